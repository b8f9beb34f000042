"""The table of everything ``srbench fetch`` can download: where from, under which name, pinned to which hash.

This is the one table of pins (:data:`DOWNLOADS`): ``srbench fetch`` downloads by it, :mod:`srbench.weights`
checks a weights file against it, and an error about a missing file names the ``srbench fetch`` command from it.
For files no project publishes a hash of, the pin is the sha256 recorded at the first download, in the ledger
(:data:`LEDGER`) beside the file. Nothing here downloads or imports anything: it sits on the bottom level, so the
lowest modules (:mod:`srbench.errors`) may read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

LEDGER = "fetched.json"  # sha256 recorded at first download, for files no project publishes a hash of


@dataclass(frozen=True)
class Download:
    name: str
    kind: str  # "weights" (into the weights folder) or "datasets" (unpacked under the data root)
    url: str | None  # None: the project offers no direct download (Google Drive folders); source says where
    filename: str
    source: str  # where the URL (or the manual download) is stated: project, file
    sha256: str | None = None  # the whole digest, or a published prefix of it (file names like vgg19-dcbb9e9d.pth)
    md5: str | None = None  # where only an md5 is published for the file
    folder: str | None = None  # datasets: the set's folder inside the archive, and where it goes under the data root
    description: str = ""
    variant: str | None = None  # generator checkpoints: srbench's variant, usable by name (srbench.infer)
    layout: str | None = None  # generator checkpoints: the key layout srbench.checkpoints detects
    alternative: tuple[str, str] | None = None  # no direct download: (an entry that has one, how the two relate)


_EDSR_BENCHMARK = ("https://cv.snu.ac.kr/research/EDSR/benchmark.tar", "benchmark.tar",
                   "EDSR-PyTorch README (sanghyun-son/EDSR-PyTorch), 'benchmark datasets'; md5 as pinned by torchSR "
                   "(Coloquinte/torchSR, torchsr/datasets/benchmarks.py)")
_EDSR_BENCHMARK_MD5 = "4ace41d33c2384b97e6b320cd0afd6ba"
_ESRGAN_GDRIVE = "xinntao/ESRGAN models/README.md: Google Drive or Baidu links only"
_BASICSR_GDRIVE = "XPixelGroup/BasicSR docs/ModelZoo.md: Google Drive links only"
_MMAGIC = "https://download.openmmlab.com/mmediting/restorers/esrgan/"

DOWNLOADS: dict[str, Download] = {d.name: d for d in (
    Download("nrqm", "weights", "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/NRQM_model.mat",
             "NRQM_model.mat", "pyiqa (chaofengc/IQA-PyTorch), pyiqa/archs/nrqm_arch.py default_model_urls",
             description="Ma's score model (the MATLAB release's, as pyiqa ships it)"),
    Download("vgg19", "weights", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "vgg19-dcbb9e9d.pth",
             "torchvision, torchvision/models/vgg.py (VGG19_Weights.IMAGENET1K_V1)", sha256="dcbb9e9d",
             description="VGG19 ImageNet weights for the perceptual loss (short and paper presets)"),
    Download("alexnet", "weights", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
             "alexnet-owt-7be5be79.pth", "torchvision, torchvision/models/alexnet.py (AlexNet_Weights.IMAGENET1K_V1)",
             sha256="7be5be79", description="AlexNet ImageNet weights, LPIPS's backbone"),
    Download("vgg16", "weights", "https://download.pytorch.org/models/vgg16-397923af.pth", "vgg16-397923af.pth",
             "torchvision, torchvision/models/vgg.py (VGG16_Weights.IMAGENET1K_V1)", sha256="397923af",
             description="VGG16 ImageNet weights, the backbone of lpips_vgg and dists"),
    # torch-fidelity publishes no hash of it (the digits in its name are not stated to be one): the sha256 of the
    # first download is recorded, and FID checks the file against that.
    Download("inception", "weights",
             "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
             "weights-inception-2015-12-05-6726825d.pth",
             "torch-fidelity (toshas/torch-fidelity), torch_fidelity/feature_extractor_inceptionv3.py URL_INCEPTION_V3",
             description="InceptionV3 (TensorFlow's 2015-12-05 graph, ported by torch-fidelity), FID's features"),
    # Generators. The hash prefixes in BasicSR's and OpenMMLab's file names are sha256 prefixes (their
    # publish_model scripts); torch.hub checks them the same way.
    Download("esrgan-official", "weights",
             "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
             "ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
             "xinntao/Real-ESRGAN docs/Training.md (release v0.1.1); BasicSR docs/ModelZoo.md: official models "
             "converted from the official release", sha256="ff704c30", variant="rrdb23", layout="basicsr",
             description="ESRGAN's released x4 model (the paper's), in BasicSR's key names"),
    Download("esrgan-original", "weights", None, "RRDB_ESRGAN_x4.pth", _ESRGAN_GDRIVE, variant="rrdb23",
             layout="official", description="the same model in the ESRGAN repository's own key names",
             alternative=("esrgan-official", "the same model in BasicSR's key names")),
    Download("rrdb-psnr", "weights", None, "RRDB_PSNR_x4.pth", _ESRGAN_GDRIVE, variant="rrdb23", layout="official",
             description="ESRGAN's PSNR-oriented RRDB model",
             alternative=("rrdb-psnr-mmagic", "a PSNR-oriented RRDB trained by mmagic, not the same weights")),
    Download("rrdb-psnr-basicsr", "weights", None, "RRDBNet_PSNR_SRx4_DF2K_official-150ff491.pth", _BASICSR_GDRIVE,
             sha256="150ff491", variant="rrdb23", layout="basicsr",
             description="ESRGAN's PSNR-oriented RRDB model in BasicSR's key names",
             alternative=("rrdb-psnr-mmagic", "a PSNR-oriented RRDB trained by mmagic, not the same weights")),
    Download("rrdb-psnr-mmagic", "weights", _MMAGIC + "esrgan_psnr_x4c64b23g32_1x16_1000k_div2k_20200420-bf5c993c.pth",
             "esrgan_psnr_x4c64b23g32_1x16_1000k_div2k_20200420-bf5c993c.pth",
             "open-mmlab/mmagic configs/esrgan/README.md", sha256="bf5c993c", variant="rrdb23", layout="basicsr",
             description="RRDB PSNR model trained by mmagic on DIV2K (published numbers: collection mmagic-esrgan)"),
    Download("esrgan-mmagic", "weights", _MMAGIC + "esrgan_x4c64b23g32_1x16_400k_div2k_20200508-f8ccaf3b.pth",
             "esrgan_x4c64b23g32_1x16_400k_div2k_20200508-f8ccaf3b.pth",
             "open-mmlab/mmagic configs/esrgan/README.md", sha256="f8ccaf3b", variant="rrdb23", layout="basicsr",
             description="ESRGAN trained by mmagic on DIV2K (published numbers: collection mmagic-esrgan)"),
    # Datasets. The EDSR benchmark archive holds Set5, Set14, B100 and Urban100 in the benchmark layout (HR plus
    # MATLAB bicubic LR_bicubic/X2..X4): one download serves the four names.
    *(Download(name, "datasets", _EDSR_BENCHMARK[0], _EDSR_BENCHMARK[1], _EDSR_BENCHMARK[2],
               md5=_EDSR_BENCHMARK_MD5, folder=f"benchmark/{folder}", description=f"{folder}, EDSR benchmark copy")
      for name, folder in (("set5", "Set5"), ("set14", "Set14"), ("bsd100", "B100"), ("urban100", "Urban100"))),
    Download("div2k-val", "datasets", "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
             "DIV2K_valid_HR.zip", "DIV2K page (data.vision.ee.ethz.ch/cvl/DIV2K); md5 as pinned by torchSR "
             "(torchsr/datasets/div2k.py), sha256 as recorded in public download manifests (448,993,893 bytes)",
             sha256="20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
             md5="9fcdda83005c5e5997799b69f955ff88", folder="DIV2K_valid_HR",
             description="DIV2K validation HR images 0801-0900 (LR made by srbench's MATLAB imresize)"),
)}


def checkpoint_download(name: str) -> Download | None:
    """The generator checkpoint downloadable under ``name`` (one with a variant), or None."""
    found = DOWNLOADS.get(name)
    return found if found is not None and found.variant is not None else None


def ledger(root: Path) -> dict:
    """The ledger of sha256 recorded at first download in folder ``root`` (empty when it has none or is unreadable)."""
    try:
        found = json.loads((root / LEDGER).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
