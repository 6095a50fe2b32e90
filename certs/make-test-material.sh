#!/usr/bin/env bash
# Makes the TEST-ONLY signing material in this folder. Nothing here is valid with the SII:
#  - test-authority.{key,pem}: a stand-in for the SII's CAF key; trusted only with --trust-test-authority
#  - test-company{,-legacy,-expired}.p12: RSA-2048 self-signed certificates of signer 11111111-1
#    (subjectAltName otherName 1.3.6.1.4.1.8321.1, as Chilean CAs issue them); password "test1234".
#    -legacy uses RC2-40/3DES with a SHA-1 MAC, as older CA files do.
#  - cafs/: one CAF per type for company 76192083-9 (folios 1-100000), shaped like the SII's,
#    with 512-bit keys and e=3; plus a CAF of another company, an expired one and a small one.
# Usage: certs/make-test-material.sh [FA-date]   (default 2026-11-01)
set -euo pipefail
cd "$(dirname "$0")"
FA="${1:-2026-11-01}"
PASS=test1234
RUT_COMPANY=76192083-9
RUT_SIGNER=11111111-1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 7300 -keyout test-authority.key -out test-authority.pem \
  -subj "/O=dte-gateway TEST/CN=TEST CAF AUTHORITY - NOT VALID WITH THE SII" 2>/dev/null

# Certificates come from `openssl ca -selfsign`, the CLI that accepts explicit validity dates
# (so the material is valid for tests timestamped in the past, and one certificate is expired).
mkdir -p "$tmp/ca"; : > "$tmp/ca/index.txt"; echo 01 > "$tmp/ca/serial"
cat > "$tmp/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
database = $tmp/ca/index.txt
serial = $tmp/ca/serial
new_certs_dir = $tmp/ca
default_md = sha256
policy = any
copy_extensions = none
x509_extensions = ext
unique_subject = no
[any]
commonName = supplied
organizationName = optional
countryName = optional
emailAddress = optional
[ext]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, nonRepudiation
subjectAltName = otherName:1.3.6.1.4.1.8321.1;IA5STRING:$RUT_SIGNER
CNF
# signer NAME SUBJECT START END
signer() {
  openssl req -new -newkey rsa:2048 -nodes -keyout "$tmp/$1.key" -out "$tmp/$1.csr" -subj "$2" 2>/dev/null
  openssl ca -batch -config "$tmp/ca.cnf" -selfsign -keyfile "$tmp/$1.key" -in "$tmp/$1.csr" -out "$tmp/$1.pem" \
    -startdate "$3" -enddate "$4" 2>/dev/null
}
signer current "/C=CL/O=dte-gateway TEST/CN=FIRMANTE DE PRUEBA - NOT VALID/emailAddress=firmante@example.invalid" 20250101000000Z 20450101000000Z
openssl pkcs12 -export -inkey "$tmp/current.key" -in "$tmp/current.pem" -name "firmante de prueba" -passout pass:$PASS -out test-company.p12
openssl pkcs12 -export -legacy -inkey "$tmp/current.key" -in "$tmp/current.pem" -name "firmante de prueba" -passout pass:$PASS -out test-company-legacy.p12
signer old "/CN=FIRMANTE VENCIDO - NOT VALID" 20200101000000Z 20210101000000Z
openssl pkcs12 -export -inkey "$tmp/old.key" -in "$tmp/old.pem" -passout pass:$PASS -out test-company-expired.p12

b64_of_hex() { printf '%b' "$(printf '%s' "$1" | sed 's/../\\x&/g')" | base64 -w0; }

# caf RUT RS TD D H FA OUT
caf() {
  local rut=$1 rs=$2 td=$3 d=$4 h=$5 fa=$6 out=$7
  openssl genrsa -3 -traditional -out "$tmp/caf.key" 512 2>/dev/null
  local hex m
  hex=$(openssl rsa -in "$tmp/caf.key" -noout -modulus | cut -d= -f2)
  m=$(b64_of_hex "$hex")
  local da="<DA><RE>$rut</RE><RS>$rs</RS><TD>$td</TD><RNG><D>$d</D><H>$h</H></RNG><FA>$fa</FA><RSAPK><M>$m</M><E>Aw==</E></RSAPK><IDK>100</IDK></DA>"
  local frma
  frma=$(printf '%s' "$da" | openssl dgst -sha1 -sign test-authority.key | base64 -w0)
  {
    printf '<?xml version="1.0"?>\n<AUTORIZACION>\n<CAF version="1.0">\n<DA>\n<RE>%s</RE>\n<RS>%s</RS>\n<TD>%s</TD>\n' "$rut" "$rs" "$td"
    printf '<RNG><D>%s</D><H>%s</H></RNG>\n<FA>%s</FA>\n<RSAPK><M>%s</M><E>Aw==</E></RSAPK>\n<IDK>100</IDK>\n</DA>\n' "$d" "$h" "$fa" "$m"
    printf '<FRMA algoritmo="SHA1withRSA">%s</FRMA>\n</CAF>\n' "$frma"
    printf '<RSASK>%s\n</RSASK>\n' "$(cat "$tmp/caf.key")"
    printf '<RSAPUBK>%s\n</RSAPUBK>\n</AUTORIZACION>\n' "$(openssl rsa -in "$tmp/caf.key" -pubout 2>/dev/null)"
  } > "$out"
}

mkdir -p cafs
for td in 33 34 39 41 43 46 52 56 61 110 111 112; do
  caf $RUT_COMPANY "EMPRESA DE PRUEBA SPA" $td 1 100000 "$FA" "cafs/caf-$RUT_COMPANY-T$td.xml"
done
caf 76555835-2 "OTRA EMPRESA DE PRUEBA" 33 1 1000 "$FA" "cafs/caf-76555835-2-T33.xml"
caf $RUT_COMPANY "EMPRESA DE PRUEBA SPA" 33 1 1000 2020-01-02 "cafs/caf-$RUT_COMPANY-T33-expired.xml"
caf $RUT_COMPANY "EMPRESA DE PRUEBA SPA" 33 100001 100005 "$FA" "cafs/caf-$RUT_COMPANY-T33-small.xml"
echo "test material written to $(pwd)"
