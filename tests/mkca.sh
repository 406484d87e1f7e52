#!/bin/sh
# mkca.sh DIR [ec|rsa|pub:FILE] [DAYS] — makes test CA material with openssl:
#   DIR/root.pem, root.key          root CA (EC P-384), 20 years
#   DIR/intermediate.pem, .key      intermediate CA (EC P-256 or RSA 2048),
#                                   DAYS days (default 3650), PKCS#8 PEM
#   DIR/chain.pem                   intermediate + root
# With pub:FILE (absolute path) the intermediate certifies the PEM public key in FILE (a
# key held in an HSM); no intermediate.key is written.
# Used by the tests, the benchmarks and the demo. Never for production.
set -eu
dir=${1:?usage: mkca.sh DIR [ec|rsa] [DAYS]}
kind=${2:-ec}
days=${3:-3650}
mkdir -p "$dir"
cd "$dir"
umask 077
cat > ca.cnf <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_int]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 \
	-out root.key 2>/dev/null
openssl req -new -x509 -config ca.cnf -extensions v3_root -key root.key \
	-subj "/O=fleetcert test/CN=fleetcert test root" -days 7300 \
	-sha384 -out root.pem
force=""
case $kind in
ec)	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out intermediate.key 2>/dev/null ;;
rsa)	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		-out intermediate.key 2>/dev/null ;;
pub:*)	# The CSR is signed by a throwaway key; -force_pubkey puts the
	# HSM's public key into the certificate.
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out intermediate.key 2>/dev/null
	force=${kind#pub:}
	kind=hsm ;;
*)	echo "mkca.sh: kind must be ec, rsa or pub:FILE" >&2; exit 2 ;;
esac
openssl req -new -config ca.cnf -key intermediate.key \
	-subj "/O=fleetcert test/CN=fleetcert test intermediate $kind" \
	-out intermediate.csr
openssl x509 -req -in intermediate.csr -CA root.pem -CAkey root.key \
	-CAcreateserial -extfile ca.cnf -extensions v3_int -days "$days" \
	${force:+-force_pubkey "$force"} \
	-sha384 -out intermediate.pem 2>/dev/null
[ -z "$force" ] || rm -f intermediate.key
cat intermediate.pem root.pem > chain.pem
rm -f intermediate.csr root.srl
chmod 644 root.pem intermediate.pem chain.pem
