#!/usr/bin/env bash
# The JobManager of Flink's native Kubernetes mode:
#   kubernetes-jobmanager.sh kubernetes-session|kubernetes-application [ARGS...]
# Flink's client puts `bash -c "kubernetes-jobmanager.sh <target> <args>"` in
# the JobManager pod it creates (CmdJobManagerDecorator; <args> is
# kubernetes.jobmanager.entrypoint.args), and flinkgate's controller does the
# same with $FLINK_HOME/bin/kubernetes-jobmanager.sh.
set -eu
case "${1:-}" in
  kubernetes-session|kubernetes-application) ;;
  *) echo "usage: kubernetes-jobmanager.sh kubernetes-session|kubernetes-application [ARGS...]" >&2; exit 2 ;;
esac
exec "$(dirname "$0")/flink-launch" "$@"
