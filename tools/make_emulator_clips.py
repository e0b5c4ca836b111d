"""Makes the emulator's clips (veo_provider/testing/assets/clip-N-RES.mp4) with ffmpeg; run once, commit the files.

Each picture has its own colour and number, so a reviewer tells the jobs' videos apart; each comes
at the three sizes the API delivers (720p as generated, 1080p and 4k as upscaled), with the size
written in the frame. The clips of one size are padded (an MP4 ``free`` box) to one length, so a
download's size does not depend on which picture a job got.

    apt-get install -y ffmpeg fonts-dejavu-core && python tools/make_emulator_clips.py
"""

from __future__ import annotations

import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "veo_provider" / "testing" / "assets"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
#: One colour per picture (keep in step with ``veo_provider.testing.emulator.media.PICTURES``).
COLOURS = ["0x2f6fb0", "0xc0392b", "0x1e8449", "0x7d3c98", "0xca6f1e", "0x117a65"]
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
SECONDS, FPS = 2, 8


def render(picture: int, label: str, width: int, height: int, out: Path) -> None:
    square = height // 8
    graph = ",".join(
        [
            # A square crossing the frame: the clip visibly plays.
            f"drawbox=x='mod(t*{width}/{SECONDS},{width})':y={height - 2 * square}:w={square}:h={square}"
            ":color=white@0.6:t=fill",
            f"drawtext=fontfile={FONT}:text='Clip {picture + 1}':fontsize={height // 5}:fontcolor=white"
            ":x=(w-tw)/2:y=(h-th)/2",
            f"drawtext=fontfile={FONT}:text='{label}':fontsize={height // 12}:fontcolor=white:x=w/30:y=h/30",
        ]
    )
    source = f"color=c={COLOURS[picture]}:s={width}x{height}:r={FPS}:d={SECONDS}"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-vf", graph, "-c:v", "libx264",
         "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-crf", "40", "-preset", "veryslow",
         "-movflags", "+faststart", "-an", str(out)],
        check=True,
    )  # fmt: skip


def pad(data: bytes, length: int) -> bytes:
    """``data`` followed by one ``free`` box, ``length`` bytes in all (still a valid MP4)."""
    box = length - len(data)
    assert box >= 8, (len(data), length)
    return data + struct.pack(">I4s", box, b"free") + bytes(box - 8)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for label, (width, height) in SIZES.items():
            made = []
            for picture in range(len(COLOURS)):
                out = Path(tmp) / f"clip-{picture + 1}-{label}.mp4"
                render(picture, label, width, height, out)
                made.append(out)
            length = -(-(max(p.stat().st_size for p in made) + 8) // 1024) * 1024  # next KiB, room for a box
            for path in made:
                (ASSETS / path.name).write_bytes(pad(path.read_bytes(), length))
                print(f"{path.name}: {length} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
