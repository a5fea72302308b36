"""Which torch build an image carries: deploy/image/check.sh runs this inside the image.

    python - cpu|gpu VERSION < deploy/image/torch_build.py

cpu: torch VERSION+cpu, with ``torch.version.cuda`` None (localhost/medai). gpu: torch VERSION
built for CUDA (PyPI's wheel says ``2.13.0+cu130`` once installed), ``torch.version.cuda`` set,
and its CUDA libraries load (cuDNN and NCCL report their versions) (localhost/medai-gpu). One
line on stdout; exit status 1 when the build is not the one asked for.

No GPU is needed: ``torch.cuda.is_available()`` is reported, and False is accepted (a build
host has no GPU and no NVIDIA driver; the GPU pool's nodes have both). What is checked is that
the image carries the CUDA build, not that this host can run it.
"""

from __future__ import annotations

import sys
import warnings


def main(variant: str, version: str) -> int:
    import torch

    got, cuda = torch.__version__, torch.version.cuda
    line = f"torch {got}, torch.version.cuda {cuda}"
    if variant == "cpu":
        print(line)
        return 0 if got == f"{version}+cpu" and cuda is None else 1
    libraries = []
    try:
        libraries.append(f"cuDNN {torch.backends.cudnn.version()}")
        libraries.append("NCCL " + ".".join(map(str, torch.cuda.nccl.version())))
    except Exception as exc:  # a CUDA library that does not load is a broken image
        libraries.append(f"CUDA libraries do not load: {type(exc).__name__}: {exc}")
        ok = False
    else:
        ok = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Found no NVIDIA driver" on a host without one
        available = torch.cuda.is_available()
    note = "" if available else " (no GPU or driver on this host: accepted)"
    print(f"{line}, {', '.join(libraries)}, torch.cuda.is_available() {available}{note}")
    cuda_build = got.split("+")[0] == version and not got.endswith("+cpu") and cuda is not None
    return 0 if ok and cuda_build else 1


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("cpu", "gpu"):
        sys.exit("usage: python torch_build.py cpu|gpu VERSION")
    sys.exit(main(sys.argv[1], sys.argv[2]))
