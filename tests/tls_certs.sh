#!/usr/bin/env bash
# Makes the test PKI with the openssl CLI into DIR (nothing here is ever
# committed): a CA, a receiver (server) and a sender (client) certificate,
# a second CA with its own client, an expired client, and a PSK file.
# The names follow QEMU's tls-creds-x509 directory layout, so the same DIR
# serves ../shared/peer/qemu_mig.py (QEMU_TLS_DIR).
#   tls_certs.sh DIR [SERVER_IP]     (SERVER_IP defaults to 127.0.0.1)
set -euo pipefail
dir=$1
ip=${2:-127.0.0.1}
mkdir -p "$dir"
cd "$dir"
umask 077
ec() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }
ca() { # name subject
	ec "$1-key.pem"
	openssl req -x509 -new -key "$1-key.pem" -subj "/CN=$2" -days 3650 -out "$1-cert.pem" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		2>/dev/null || openssl req -x509 -new -key "$1-key.pem" -subj "/CN=$2" -days 3650 \
		-out "$1-cert.pem" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
}
leaf() { # name cn-or-/subject san ca days [startdate]
	local name=$1 cn=$2 san=$3 ca=$4 days=$5 subj="/CN=$2"
	[[ $cn == /* ]] && subj=$cn
	ec "$name-key.pem"
	openssl req -new -key "$name-key.pem" -subj "$subj" -out "$name.csr" 2>/dev/null
	printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' \
		"$san" >"$name.ext"
	openssl x509 -req -in "$name.csr" -CA "$ca-cert.pem" -CAkey "$ca-key.pem" -CAcreateserial \
		-days "$days" -extfile "$name.ext" -out "$name-cert.pem" 2>/dev/null
	rm -f "$name.csr" "$name.ext"
}
ca ca "livemig test CA"
ca other-ca "another CA"
leaf server receiver "IP:$ip,DNS:localhost,DNS:receiver" ca 30
leaf client sender "DNS:sender" ca 30
leaf intruder intruder "DNS:intruder" ca 30
leaf stranger sender "DNS:sender" other-ca 30
# Two clients whose 141-byte subjects differ in their last byte
# (test_tls_peer: a subject is no identity once cut to fit a buffer).
long="livemig test organisation, a name long enough to fill a field"
leaf long1 "sender/O=$long/OU=$long 1" "DNS:sender" ca 30
leaf long2 "sender/O=$long/OU=$long 2" "DNS:sender" ca 30
# And one in most CAs' order, the CN last (test_tls_peer: shown first).
leaf cnlast "/C=XX/ST=Some State/L=Some City/O=$long/OU=$long/CN=sender" "DNS:sender" ca 30
# Expired: signed with a validity that ended yesterday (x509 -days can't
# go negative; a CA-signed cert with a past end date via `openssl ca`).
ec expired-key.pem
openssl req -new -key expired-key.pem -subj "/CN=sender" -out expired.csr 2>/dev/null
mkdir -p caroot/newcerts
: >caroot/index.txt
echo 01 >caroot/serial
cat >caroot/ca.cnf <<CNF
[ca]
default_ca = d
[d]
dir = caroot
database = caroot/index.txt
new_certs_dir = caroot/newcerts
serial = caroot/serial
default_md = sha256
policy = p
copy_extensions = none
[p]
commonName = supplied
CNF
openssl ca -batch -config caroot/ca.cnf -cert ca-cert.pem -keyfile ca-key.pem -in expired.csr \
	-out expired-cert.pem -startdate 20200101000000Z -enddate 20200201000000Z -notext 2>/dev/null
rm -rf caroot expired.csr
# PSKs: QEMU's keys.psk format, and a wrong one.
printf 'livemig:%s\n' "$(openssl rand -hex 32)" >keys.psk
printf 'livemig:%s\n' "$(openssl rand -hex 32)" >wrong.psk
openssl rand 32 >raw.psk
# Two identities in one file (test_tls_peer, test_tls_join: a channel of
# the other one is refused).
printf 'alice:%s\nbob:%s\n' "$(openssl rand -hex 32)" "$(openssl rand -hex 32)" >two.psk
