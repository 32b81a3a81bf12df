#!/bin/sh
# Regenerates the test certificates of the TLS tests (tests/transport.rs,
# tests/c/test_api.c, the C++ and Erlang tests, `make bench-tls`):
#
#   ca.crt                     the cluster CA (its key is not kept)
#   node1..3.crt / .key        node certificates signed by it, each naming
#                              IP 127.0.0.1 and DNS localhost (every test node
#                              listens on loopback), for server and client use
#   other-ca.crt, other.crt/.key   a second CA and a node certificate it signed
#                              (a peer from another cluster's CA)
#   wrong-ip.crt / .key        signed by ca.crt but naming only 127.0.0.2 (a
#                              node whose certificate is not for the address
#                              dialed)
#
# ECDSA P-256 keys (cheap handshakes), valid for 100 years, so that the
# committed files do not expire under the tests. Run from anywhere:
#   sh tests/certs/gen.sh
set -eu
cd "$(dirname "$0")"
DAYS=36500

ca() { # name subject
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$1.key" -out "$1.crt" -days $DAYS -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

leaf() { # name ca san
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$1.key" -out "$1.csr" -subj "/CN=muxraft $1" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth,clientAuth" \
        "subjectAltName=$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \
        -out "$1.crt" -days $DAYS -extfile "$1.ext" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

ca ca "muxraft test cluster CA"
ca other-ca "another cluster's CA"
for n in node1 node2 node3; do
    leaf $n ca "IP:127.0.0.1,DNS:localhost"
done
leaf other other-ca "IP:127.0.0.1,DNS:localhost"
leaf wrong-ip ca "IP:127.0.0.2"
rm -f ./*.srl ca.key other-ca.key
echo "test certificates written to $(pwd)"
