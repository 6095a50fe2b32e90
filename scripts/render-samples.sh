#!/usr/bin/env bash
# Renders the README's sample pictures from the example documents: a factura on letter paper and a
# boleta on an 80 mm roll, built and signed with the TEST material in certs/ (not valid with the SII)
# and printed by `dte-gateway dte pdf`. Needs pdftoppm (poppler-utils).
# Usage: scripts/render-samples.sh   (writes docs/sample-factura-letter.png, docs/sample-boleta-80mm.png)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/dte-gateway
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sign=(--company examples/company.json --cert certs/test-company.p12 --cert-password test1234
      --trust-test-authority certs/test-authority.pem --timestamp 2026-11-20T10:00:00)
"$bin" dte build --input examples/33-factura.json --caf certs/cafs/caf-76192083-9-T33.xml --folio 1 \
  "${sign[@]}" --output "$work/factura.xml" >/dev/null
"$bin" dte build --input examples/39-boleta.json --caf certs/cafs/caf-76192083-9-T39.xml --folio 1 \
  "${sign[@]}" --output "$work/boleta.xml" >/dev/null
print=(--company examples/company.json --trust-test-authority certs/test-authority.pem)
"$bin" dte pdf --input "$work/factura.xml" "${print[@]}" --output "$work/factura.pdf"
"$bin" dte pdf --input "$work/boleta.xml" "${print[@]}" --format 80mm --output "$work/boleta.pdf"
pdftoppm -r 90 -png -singlefile "$work/factura.pdf" docs/sample-factura-letter
pdftoppm -r 110 -png -singlefile "$work/boleta.pdf" docs/sample-boleta-80mm
echo "wrote docs/sample-factura-letter.png and docs/sample-boleta-80mm.png"
