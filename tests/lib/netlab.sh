# shellcheck shell=bash
# The network lab of the private-network tests and benchmark: an
# "outside" test host in a network namespace of its own, on documentation
# addresses, behind a veth pair. Source it inside a sandbox (it must
# have a network namespace of its own: see sandbox.sh); prefix a command
# (e.g. the booted lab's `C`) to build it elsewhere.

# netlab_outside [PREFIX...]: the namespace "outside" with 192.0.2.2/24,
# the sandbox's end 192.0.2.1 as its default route.
netlab_outside() {
    "$@" sh -ec '
        ip link set lo up
        ip netns add outside
        ip link add up0 type veth peer name eth0 netns outside
        ip addr add 192.0.2.1/24 dev up0
        ip link set up0 up
        ip -n outside addr add 192.0.2.2/24 dev eth0
        ip -n outside link set eth0 up
        ip -n outside link set lo up
        ip -n outside route add default via 192.0.2.1'
}
