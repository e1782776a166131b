"""Run the `dagster` CLI with lake writes that stall half-way, so a test can kill -9 the run
worker while it is provably in the middle of writing a partition.

``python -m price_pipeline_tests.ops.slow_writes <dagster CLI args…>`` with
``PP_SLOW_WRITE_MATCH`` (a file name suffix, e.g. ``prices.parquet``) and ``PP_SLOW_WRITE_MARKER``
(a path): every copy or move into the lake whose destination ends with the suffix writes the first
half of the bytes, fsyncs, creates the marker, then stalls (a move stalls as one across
filesystems would: a scratch folder on another disk than the lake). Only the byte copy is
replaced; the lake's own publishing logic (temp file, then ``os.replace``) runs unchanged.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import types

import price_pipeline.lib.lake.storage as storage


def _stalling_copyfile(src, dst, *args, **kwargs):
    if not os.fspath(dst).endswith(os.environ["PP_SLOW_WRITE_MATCH"]):
        return shutil.copyfile(src, dst, *args, **kwargs)
    with open(src, "rb") as reader, open(dst, "wb") as writer:
        data = reader.read()
        writer.write(data[: len(data) // 2])
        writer.flush()
        os.fsync(writer.fileno())
        with open(os.environ["PP_SLOW_WRITE_MARKER"], "w") as marker:
            marker.write(os.fspath(dst))
        time.sleep(float(os.environ.get("PP_SLOW_WRITE_STALL_SECONDS", "120")))
        writer.write(data[len(data) // 2 :])
    return dst


def _stalling_move(src, dst, *args, **kwargs):
    if not os.fspath(dst).endswith(os.environ["PP_SLOW_WRITE_MATCH"]):
        return shutil.move(src, dst, *args, **kwargs)
    _stalling_copyfile(src, dst)
    os.unlink(src)
    return dst


def install() -> None:
    patched = types.SimpleNamespace(**{name: getattr(shutil, name) for name in dir(shutil) if not name.startswith("__")})
    patched.copyfile = _stalling_copyfile
    patched.move = _stalling_move
    storage.shutil = patched


if __name__ == "__main__":
    install()
    from dagster._cli import main

    sys.argv = ["dagster", *sys.argv[1:]]
    main()
