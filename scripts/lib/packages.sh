# Sourced by the set-up scripts: installs what a step needs from Debian's archive with
# apt-get (as CI machines do), and on a machine without apt-get (macOS, Fedora, ...) stops
# with what to install there instead.
#
#   require_packages <who> <what it is for> <brew formulae> <dnf packages> <Debian packages...>
require_packages() {
  local who=$1 purpose=$2 brew=$3 dnf=$4
  shift 4
  if command -v apt-get >/dev/null 2>&1; then
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "$who: installing $* from Debian ($purpose)" >&2
    # Nothing on stdout: callers may capture it (a path they print).
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    return
  fi
  {
    echo "$who: $purpose needs software this machine lacks, and it has no apt-get to install it."
    echo "  macOS (Homebrew): brew install $brew"
    echo "  Fedora:           sudo dnf install $dnf"
    echo "  Debian / Ubuntu:  sudo apt-get install $*"
    echo "Install it, then run the same command again."
  } >&2
  exit 1
}
