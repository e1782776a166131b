"""The one base of the library's raw stream wrappers (decompression caps, transcoding, the JSON
guard, prefixed CSV bodies, the validator's record views)."""

from __future__ import annotations

import io


class InnerReader(io.RawIOBase):
    """A readable raw stream over ``self.inner`` (set by the subclass): closing it closes
    ``inner`` first, and itself even when that fails."""

    inner: io.IOBase

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            super().close()
