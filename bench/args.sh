# shellcheck shell=bash
# The command line every bench script takes, [-b BUILD_DIR]: sets B (the
# build directory, "build" by default). Source it before anything else:
# sourced without arguments, it reads the script's own.

# B is for the script that sources this file.
# shellcheck disable=SC2034
B=build
while getopts b: opt; do
	case $opt in
	b) B=$OPTARG ;;
	*) echo "usage: $0 [-b BUILD_DIR]" >&2; exit 2 ;;
	esac
done
