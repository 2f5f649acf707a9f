#!/usr/bin/env bash
# A TaskManager of Flink's native Kubernetes mode. Flink's ResourceManager
# creates these pods itself (CmdTaskManagerDecorator), with the command
# `kubernetes.entry.path` (default /docker-entrypoint.sh) and the args
#   bash -c "kubernetes-taskmanager.sh <dynamic -Dk='v' properties, taskmanager.resource-id
#            among them> <-D taskmanager.memory.*=...b settings> <kubernetes.taskmanager.entrypoint.args>"
# found through PATH, and the JVM memory flags in $FLINK_TM_JVM_MEM_OPTS.
set -eu
exec "$(dirname "$0")/flink-launch" kubernetes-taskmanager "$@"
