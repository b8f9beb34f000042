"""Reading a weights file safely: never running the code a pickle may carry, and saying why a file is unusable.

``.pth`` files are read with ``torch.load(weights_only=True)``; before that, and whenever torch refuses one, the
pickle's opcodes are scanned (never executed) for what they would import, so that a refusal names it, and a
file that is not a checkpoint at all, or is cut short, is told apart from one that carries code. This is the
bottom level's reader: the metrics' networks (FID's Inception, LPIPS's AlexNet, pyiqa's files) and the
generator checkpoints (:mod:`srbench.checkpoints`) all read their weights through it; it imports nothing of
srbench but errors and text helpers, and torch only when it loads.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from srbench.errors import SrbenchError
from srbench.text import one_line


class CheckpointError(SrbenchError):
    """A checkpoint cannot be read or does not fit the requested architecture."""


# -- what a .pth file is, when torch.load refuses it ------------------------------------------------------

_ZIP_MAGIC = b"PK\x03\x04"
_SCAN_LIMIT = 64 << 20  # the pickle part of a checkpoint is small; tensors live elsewhere
# Opcodes that make the unpickler import or call something by name.
_IMPORTING = {"GLOBAL", "STACK_GLOBAL", "INST", "EXT1", "EXT2", "EXT4"}
_STRING_PUSHES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
                  "SHORT_BINSTRING"}


def _py3_name(module: str, name: str) -> str:
    """``module.name`` as Python 3 spells it (protocol-2 pickles, torch's, say ``__builtin__``)."""
    import _compat_pickle

    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


class _ImportScan:
    """Follows one pickle's opcodes just far enough to name what it imports (GLOBAL, STACK_GLOBAL, ...)."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.stack: list[object] = []  # only as deep as STACK_GLOBAL looks: the strings just pushed
        self.memo: dict[int, object] = {}

    def feed(self, opcode, arg) -> None:
        name = opcode.name
        if name in _STRING_PUSHES:
            self.stack.append(arg)
        elif name in ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"):
            self.memo[len(self.memo) if name == "MEMOIZE" else int(arg)] = self.stack[-1] if self.stack else None
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            self.stack.append(self.memo.get(int(arg)))
        elif name in _IMPORTING:
            self.found.append(self._imported(name, arg))
        elif opcode.stack_after:
            self.stack.append(None)
        del self.stack[:-2]

    def _imported(self, name: str, arg) -> str:
        if name == "STACK_GLOBAL":
            module, attr = (self.stack[-2], self.stack[-1]) if len(self.stack) >= 2 else ("?", "?")
            return _py3_name(str(module), str(attr))
        if name.startswith("EXT"):
            return f"<extension code {arg}>"
        return _py3_name(*str(arg).split(" ", 1)) if " " in str(arg) else str(arg)


def _scan_pickles(data: bytes, max_pickles: int = 5) -> tuple[int, list[str]]:
    """(complete pickles at the start of ``data``, the names they import). A legacy torch file is five
    pickles followed by raw storage bytes (never scanned: they could parse as anything)."""
    import io
    import pickletools

    stream = io.BytesIO(data)
    complete, names = 0, []
    while complete < max_pickles and stream.tell() < len(data):
        scan = _ImportScan()
        try:
            for opcode, arg, _ in pickletools.genops(stream):
                scan.feed(opcode, arg)
        except Exception:
            break
        complete += 1
        names += scan.found
    return complete, names


def _allowed_globals() -> set[str]:
    try:  # what torch's weights_only unpickler itself accepts
        from torch._weights_only_unpickler import _get_allowed_globals

        return set(_get_allowed_globals())
    except (ImportError, AttributeError, TypeError):  # a private API: fall back to state dicts' needs
        return {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
                *(f"torch.{t}Storage" for t in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short",
                                                 "Char", "Byte", "Bool"))}


def _unsafe_globals(names: list[str]) -> list[str]:
    allowed = _allowed_globals()
    return sorted({n for n in names if n not in allowed})


def _refuse_code(path: Path, names: list[str]) -> CheckpointError:
    shown = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
    return CheckpointError(
        f"{path}: refused: loading it would execute pickled code (it imports {shown}, not just tensors). If you "
        "trust its source, re-save its state dict with torch.save(model.state_dict()) and load that"
    )


def _container(path: Path) -> str:
    """"zip" (torch.save's default), "pickle" (torch's legacy format) or "" (neither: not a checkpoint)."""
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head.startswith(_ZIP_MAGIC[:2]):
        return "zip"
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # PROTO 2..5: torch writes protocol 2
        return "pickle"
    return ""


def _pickle_part(path: Path, container: str) -> bytes:
    """The bytes that hold a weights file's pickle: a zip archive's data.pkl, else the file's start."""
    import zipfile

    if container != "zip":
        with open(path, "rb") as fh:
            return fh.read(_SCAN_LIMIT)
    try:
        with zipfile.ZipFile(path) as zf:
            member = next((n for n in zf.namelist() if n == "data.pkl" or n.endswith("/data.pkl")), None)
            if member is None:
                raise CheckpointError(f"{path}: a zip archive but not a PyTorch checkpoint (no data.pkl)")
            with zf.open(member) as fh:
                return fh.read(_SCAN_LIMIT)
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint (PyTorch zip archive: "
                              f"{one_line(str(exc) or type(exc).__name__)})") from None


def _diagnose(path: Path, container: str, exc: Exception | None) -> CheckpointError:
    """Why torch.load failed on ``path`` (or would fail, if exc is None): pickled code, or not a checkpoint."""
    torch_said = one_line(f"{type(exc).__name__}: {exc}" if str(exc) else f"{type(exc).__name__}, the file ends "
                           "early") if exc is not None else ""
    try:
        data = _pickle_part(path, container)
    except CheckpointError as err:
        return err
    except OSError as err:
        return CheckpointError(f"{path}: cannot read checkpoint ({err.strerror or err})")
    complete, names = _scan_pickles(data)
    unsafe = _unsafe_globals(names)
    unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc or ""))
    if unsafe or unsupported:  # torch's own refusal covers what the scan cannot see
        return _refuse_code(path, unsafe or ([unsupported.group(1)] if unsupported else []))
    if container == "":
        if complete:
            return CheckpointError(f"{path}: not a checkpoint (a pickle, but neither a PyTorch zip archive nor "
                                   "torch's pickle format)")
        return CheckpointError(f"{path}: not a checkpoint (neither a PyTorch zip archive nor a pickle; it starts "
                               f"with {data[:8]!r})")
    why = re.search(r"WeightsUnpickler error: (.+?)(?:\n\n|$)", str(exc or ""), re.S)
    if why and complete:  # a whole pickle, without code, that holds something other than tensors
        return CheckpointError(f"{path}: not a checkpoint torch can read as plain tensors "
                               f"({one_line(why.group(1))})")
    return CheckpointError(f"{path}: corrupt or truncated checkpoint ({torch_said})")


def check_weights_file(path: str | os.PathLike) -> None:
    """Refuse, without loading any tensor, a weights file that is missing, not a checkpoint, or whose pickle
    would run code (cheap: for configuration checks; read_weights still checks everything when loading)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            try:
                with safe_open(str(path), "pt"):
                    return
            except Exception as exc:
                raise CheckpointError(f"{path}: corrupt or truncated safetensors file "
                                      f"({one_line(str(exc) or type(exc).__name__)})") from None
        container = _container(path)
        if not container:
            raise _diagnose(path, container, None)
        complete, names = _scan_pickles(_pickle_part(path, container))
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from None
    unsafe = _unsafe_globals(names)
    if unsafe:
        raise _refuse_code(path, unsafe)
    if not complete:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint (its pickle ends early or is malformed)")


def read_weights(path: str | os.PathLike) -> object:
    """What a weights file holds (.safetensors: a dict of tensors; anything else: torch.load with
    ``weights_only=True``), or one CheckpointError saying whether it is missing, truncated, not a checkpoint
    at all, or refused because loading it would run pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise CheckpointError(f"{path}: corrupt or truncated safetensors file "
                                  f"({one_line(str(exc) or type(exc).__name__)})") from None
    try:
        container = _container(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from None
    if not container:
        raise _diagnose(path, container, None)
    try:
        import torch

        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises a zoo of types for bad pickles and zip archives
        raise _diagnose(path, container, exc) from None
