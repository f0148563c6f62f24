# Sourced by the scripts that install pinned tools: where those tools are kept.
#
# Tools live outside the checkout, in one cache per user (ORDERS_TOOLS_CACHE, default
# $XDG_CACHE_HOME/orders-service-tools or ~/.cache/orders-service-tools), one directory per pinned
# version, so a fresh clone on a machine that has run the tests before installs nothing. Each
# installer prints what it installs, and where, on stderr.
ORDERS_TOOLS_CACHE="${ORDERS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/orders-service-tools}"
mkdir -p "$ORDERS_TOOLS_CACHE"

# with_tools_lock CMD...: runs CMD holding the cache's lock, so two checkouts installing the same
# tool at once do not build it over each other.
with_tools_lock() {
  (
    flock 9
    "$@"
  ) 9>"$ORDERS_TOOLS_CACHE/.lock"
}
