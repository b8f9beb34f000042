# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # srbench from Python
#
# Evaluate bicubic upsampling and a small generator on the `skimage` set that ships with srbench (no data to
# download), compare them image by image, and draw the perception-distortion plane. Open this file in Jupyter
# with jupytext, or run `jupytext --to notebook docs/quickstart.py`.

# %%
# %matplotlib inline
import tempfile
from pathlib import Path

import srbench

srbench.__version__

# %% [markdown]
# A small generator: srbench's fixed drift-check model (a 3-block RRDB with seeded random weights, so its
# numbers are poor, but every step below runs as it would with your checkpoint; `srbench fetch weights
# esrgan-official` gets the real ESRGAN).

# %%
from srbench.check import small_model_checkpoint

checkpoint = small_model_checkpoint(Path(tempfile.mkdtemp()))

# %% [markdown]
# Evaluate both models under the `sr` protocol (PSNR and SSIM on Y, MATLAB conventions). The result renders as
# the paper table, best bold and second underlined.

# %%
res = srbench.evaluate(["bicubic", checkpoint], "skimage", protocol="sr")
res

# %% [markdown]
# Everything is pandas: one row per model, dataset, protocol and metric, with a bootstrap interval...

# %%
res.summary[["model", "dataset", "metric", "value", "n_images", "ci_low", "ci_high"]]

# %% [markdown]
# ...and one row per image, with the fingerprints of what produced it.

# %%
res.per_image.head()

# %% [markdown]
# The same table for a paper:

# %%
print(res.table(metrics=["psnr_y", "ssim_y"], fmt="latex"))

# %% [markdown]
# Compare the two on the same images: the paired difference, its interval, wins/ties/losses and a p-value.

# %%
res.compare("bicubic", "rrdb23-smoke")[["metric", "value_a", "value_b", "difference", "low", "high", "wins",
                                         "losses", "p_value"]]

# %% [markdown]
# The PIRM protocol (RMSE and NIQE on the rounded Y, shave 4; PI needs Ma's model, `srbench fetch weights nrqm`)
# and its perception-distortion plane. Without Ma's model the plane's y axis is NIQE.

# %%
pirm = srbench.evaluate(["bicubic", checkpoint], "skimage", protocol="pirm", skip_unavailable=True)
figure = pirm.plane()
figure

# %% [markdown]
# Any registered metric is a function of images too, computed as its protocol computes it.

# %%
from srbench.datasets import resolve

hr = resolve("skimage").items[0].read_hr()
niqe = srbench.metric("niqe")(hr)
round(niqe, 4)
