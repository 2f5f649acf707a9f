#!/usr/bin/env bash
# /docker-entrypoint.sh of the flinkgate flink:1.20 image.
#
#   /docker-entrypoint.sh jobmanager [ARGS...]       standalone session JobManager
#   /docker-entrypoint.sh standalone-job [ARGS...]   standalone application JobManager
#                                                    (--job-classname C, --job-id ID, ... pass through)
#   /docker-entrypoint.sh taskmanager [ARGS...]      standalone TaskManager
#   /docker-entrypoint.sh help
#   /docker-entrypoint.sh COMMAND [ARGS...]          anything else runs as given, e.g.
#       bash -c "$FLINK_HOME/bin/kubernetes-jobmanager.sh kubernetes-session"
#       bash -c "kubernetes-taskmanager.sh -D..."   (Flink's native TaskManager pods)
#
# Started as root, it runs the command as the user flink (uid 9999) with
# setpriv, after making the log directory flink's; FLINK_RUN_AS_ROOT=1 keeps
# root. The Flink processes are started by $FLINK_HOME/bin/flink-launch,
# which also applies FLINK_PROPERTIES (see its header).
set -eu
export FLINK_HOME="${FLINK_HOME:-/opt/flink}"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

as_flink=()
if [[ "$(id -u)" == 0 && -z "${FLINK_RUN_AS_ROOT:-}" ]] && id flink >/dev/null 2>&1; then
  log_dir="${FLINK_LOG_DIR:-$FLINK_HOME/log}"
  # an emptyDir mounted there is root's; a read-only one stays as it is
  mkdir -p "$log_dir" 2>/dev/null && chown flink:flink "$log_dir" 2>/dev/null || true
  as_flink=(setpriv --reuid=flink --regid=flink --init-groups)
  export HOME="$FLINK_HOME" USER=flink LOGNAME=flink
fi

case "${1:-help}" in
  jobmanager|standalone-job|taskmanager)
    role="$1"; shift
    exec "${as_flink[@]}" "$FLINK_HOME/bin/flink-launch" "$role" "$@" ;;
  help|-h|--help)
    usage ;;
  *)
    exec "${as_flink[@]}" "$@" ;;
esac
