#!/usr/bin/env bash
# On the GPU machine, after the vLLM bundle's install: keep the carried nvidia-cutlass-dsl + quack-kernels part(s) (.gpu/c1, .gpu/c2
# from `make gpu-cutlass-bundle`, one device call each) in /var/tmp/cparts; the call that carries .gpu/c2 (it holds
# the sum) joins, checks and installs them into /tmp/site, then imports cutlass the way the harness's children do.
set -euo pipefail
SITE=${SITE:-/tmp/site}
PARTS=/var/tmp/cparts
mkdir -p "$PARTS"
cp .gpu/c*/cutlass.tar.* "$PARTS"/
echo "cutlass parts here: $(cd "$PARTS" && echo cutlass.tar.*)"
[ -f .gpu/c2/cutlass.sha256 ] || exit 0
[ -d "$SITE/vllm" ] || { echo "no vLLM bundle in $SITE: install it first" >&2; exit 2; }
cat "$PARTS"/cutlass.tar.0* >/var/tmp/cutlass.tar
echo "$(cat .gpu/c2/cutlass.sha256)  /var/tmp/cutlass.tar" | sha256sum -c --quiet
rm -rf /var/tmp/cw && mkdir -p /var/tmp/cw && tar xf /var/tmp/cutlass.tar -C /var/tmp/cw
python3 -m pip install -q --no-index --no-deps --target "$SITE" /var/tmp/cw/*.whl 2>&1 | grep -v -e WARNING -e '^$' || true
PYTHONPATH=$(python3 -c 'from bench.gpu import machine; print(machine.python_path())') \
    python3 -c 'import cutlass, cutlass.cute, quack.compile_utils; print("cutlass from", cutlass.__file__, "and quack", quack.__version__)'
