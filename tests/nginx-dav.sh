#!/bin/sh
# Write the config of a private nginx that serves WebDAV PUT and DELETE (and
# GET, HEAD) on 127.0.0.1, for the storage tests and benchmarks. Everything
# nginx writes stays under DIR; objects land in DIR/data. Starting and
# stopping is the caller's: run it in the foreground as
#
#   nginx -e DIR/error.log -p DIR/ -c DIR/nginx.conf -g 'daemon off;'
#
# and stop it with SIGQUIT (or SIGTERM).
#
# usage: nginx-dav.sh conf DIR PORT [tls]
#   tls: listen with TLS on a fresh self-signed certificate for 127.0.0.1
#        (DIR/cert.pem, usable as a CA file; DIR/key.pem).
set -eu

usage() {
	echo "usage: $0 conf DIR PORT [tls]" >&2
	exit 2
}

[ $# -ge 3 ] && [ "$1" = conf ] || usage
dir=$2
port=$3
tls=${4:-}

mkdir -p "$dir/data" "$dir/tmp/body" "$dir/tmp/proxy" "$dir/tmp/fastcgi" \
    "$dir/tmp/uwsgi" "$dir/tmp/scgi"

# As root, nginx would hand the work to an unprivileged user that cannot
# write DIR; the tests own DIR, so the workers run as the caller.
user=""
if [ "$(id -u)" -eq 0 ]; then
	user="user root root;"
fi

listen="listen 127.0.0.1:$port;"
ssl=""
if [ "$tls" = tls ]; then
	if [ ! -f "$dir/cert.pem" ]; then
		openssl req -x509 -newkey ec -pkeyopt \
		    ec_paramgen_curve:prime256v1 -nodes -days 2 \
		    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
		    -keyout "$dir/key.pem" -out "$dir/cert.pem" \
		    >/dev/null 2>&1
	fi
	listen="listen 127.0.0.1:$port ssl;"
	ssl="ssl_certificate $dir/cert.pem; ssl_certificate_key $dir/key.pem;"
fi

cat >"$dir/nginx.conf" <<EOF
$user
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path $dir/tmp/body;
	proxy_temp_path $dir/tmp/proxy;
	fastcgi_temp_path $dir/tmp/fastcgi;
	uwsgi_temp_path $dir/tmp/uwsgi;
	scgi_temp_path $dir/tmp/scgi;
	client_max_body_size 0;
	server {
		$listen
		$ssl
		root $dir/data;
		location / {
			dav_methods PUT DELETE;
			create_full_put_path off;
			dav_access user:rw group:r all:r;
		}
	}
}
EOF
