"""Audio tracks of videos: reading a time span as float samples (PyAV), and writing AAC beside the frames.

LTX-2 trains on the sound of each clip: its audio VAE wants a fixed sample rate (16 kHz stereo for 2.0) over
exactly the span of the video frames used. ``read_audio`` decodes the first audio stream over
[start, start + duration) seconds measured from the video's first frame (the origin every frame index and
scene time in this package uses), resamples with FFmpeg's resampler (``av.AudioResampler``) and places every
sample by its timestamp, so the span is sample-accurate whatever the container's start offsets or the
decoder's frame size. Silence the track does not cover is zero and reported (``AudioClip.padded_seconds``).

``AudioTrackWriter`` encodes samples to an AAC stream of an output container; ``media.VideoWriter`` uses it,
interleaving the sound with the frames by time, for clips and validation videos with sound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ltx_train_lib.media import _bad, _open, _reason, is_image

# Decoding starts this long before the span: an AAC/MP3/Opus frame after a seek is only right once the
# decoder has seen the frame before it (overlapping transform windows, Opus pre-skip).
_PREROLL_SECONDS = 0.5
# Keep decoding this far past the span before flushing: the resampler holds back a few samples.
_TAIL_SECONDS = 0.05
# Samples are placed by counting from the first frame's timestamp; a later frame's timestamp moves the count
# only when it disagrees by more than this. Matroska/WebM store milliseconds (an AAC frame of 21.33 ms is
# stamped 21, 43, 64, ...), so following every timestamp would drop or repeat samples at each frame; a real
# gap or overlap in the track is larger.
_RESYNC_SECONDS = 0.01

_AUDIO_FIX = (
    "Re-encode the sound (e.g. `ffmpeg -i IN -c:v copy -c:a aac OUT.mp4`), drop it (`ffmpeg -i IN -c copy -an "
    "OUT.mp4`), or remove the file."
)

# What AAC can store; other rates are resampled to 48 kHz when written.
AAC_SAMPLE_RATES: frozenset[int] = frozenset(av.codec.Codec("aac", "w").audio_rates or (48000,))


@dataclass
class AudioClip:
    """Float32 samples [channels, N] in [-1, 1] at ``sample_rate``, and where they came from.

    Build one from any waveform with ``AudioClip(samples, sample_rate)``; ``read_audio`` fills the rest.
    """

    samples: np.ndarray
    sample_rate: int
    start: float = 0.0  # seconds from the source video's first frame
    padded_seconds: float = 0.0  # zeros added where the source track has no sound (after its end, before its start)
    path: Path | None = None
    source_sample_rate: int | None = None
    source_channels: int | None = None
    source_codec: str | None = None

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples)
        if samples.ndim == 1:
            samples = samples[None]
        if samples.ndim != 2 or samples.shape[0] not in (1, 2):
            raise ValueError(f"audio samples must be [N] or [channels, N] with 1 or 2 channels, got {samples.shape}")
        if int(self.sample_rate) <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        self.samples = np.ascontiguousarray(samples, dtype=np.float32)
        self.sample_rate = int(self.sample_rate)

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


@dataclass(frozen=True)
class AudioStreamInfo:
    """The first audio stream of a file, from its header (nothing decoded)."""

    codec: str
    sample_rate: int
    channels: int
    duration: float | None  # seconds, None when the container does not say


def audio_stream_info(path: str | Path) -> AudioStreamInfo | None:
    """The file's first audio stream, or None for a file without one (or an image). Cheap: reads the header."""
    path = Path(path)
    if is_image(path):
        return None
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        return AudioStreamInfo(ctx.name, int(ctx.sample_rate or 0), int(ctx.channels or 0), duration)


def has_audio(path: str | Path) -> bool:
    """True when the file has an audio stream (header only; an unreadable file raises DatasetError)."""
    return audio_stream_info(path) is not None


def _video_origin(container: av.container.InputContainer) -> float:
    """Time (seconds) of the first video frame: the zero of every span. 0 for audio-only files."""
    if container.streams.video:
        video = container.streams.video[0]
        if video.start_time is not None and video.time_base is not None:
            return float(video.start_time * video.time_base)
    return 0.0


def read_audio(
    path: str | Path, *, start: float = 0.0, duration: float, sample_rate: int, channels: int = 2
) -> AudioClip | None:
    """The sound of ``path`` over [start, start + duration) seconds from its first video frame.

    Returns float32 samples [channels, round(duration * sample_rate)] in [-1, 1] at ``sample_rate``: mono
    sources are copied to both channels, sources with more channels are down-mixed by FFmpeg's resampler.
    Where the track has no sound (the span runs past its end, or the track starts late) the samples are zero
    and ``padded_seconds`` says how much. Returns None for a file without an audio stream, or an image.
    Raises DatasetError naming the file when the audio cannot be decoded.
    """
    path = Path(path)
    if duration <= 0 or not math.isfinite(duration):
        raise ValueError(f"duration must be a positive number of seconds, got {duration}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    if is_image(path):
        return None
    num_out = round(duration * sample_rate)
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        source_channels = int(ctx.channels or 0)
        t0 = _video_origin(container) + start  # container seconds of output sample 0
        first_out = round(t0 * sample_rate)  # output sample 0 on the resampled clock (whose sample k is at k/rate)
        t_end = t0 + duration
        tb = stream.time_base
        stream_end = None
        if stream.start_time is not None and stream.duration is not None and tb is not None:
            # Decoders pad the last frame (AAC to 1024 samples); the stream's duration says where sound ends.
            stream_end = round(float((stream.start_time + stream.duration) * tb) * sample_rate) - first_out
        seek_to = t0 - _PREROLL_SECONDS
        stream_start = float(stream.start_time * tb) if stream.start_time is not None and tb is not None else 0.0
        # Mono is copied to both channels here: FFmpeg's own mono->stereo mix lowers the level by 3 dB.
        mix = "mono" if channels == 1 or source_channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=mix, rate=sample_rate)
        out = np.zeros((1 if mix == "mono" else 2, num_out), np.float32)
        covered = np.zeros(num_out, bool)

        resync = round(_RESYNC_SECONDS * sample_rate)

        def place(frames: list[av.AudioFrame], pos: int | None) -> int | None:
            """Copy resampled frames into ``out`` after each other; returns the next output position.

            None = not anchored yet: the first frame with a timestamp sets where the count starts."""
            for frame in frames:
                stamp = None
                if frame.pts is not None and frame.time_base is not None:
                    # In the frame's own time base: a pass-through resampler (same rate and layout) hands back
                    # the decoder's frame, stamped in the stream's time base rather than 1/sample_rate.
                    stamp = round(frame.pts * frame.time_base * sample_rate) - first_out
                if stamp is not None and (pos is None or abs(stamp - pos) > resync):
                    pos = stamp
                if pos is None:
                    pos = 0  # a stream without any timestamp: it starts with the video
                data = frame.to_ndarray()
                lo, hi = max(pos, 0), min(pos + frame.samples, num_out)
                if stream_end is not None:
                    hi = min(hi, stream_end)
                if hi > lo:
                    out[:, lo:hi] = data[:, lo - pos : hi - pos]
                    covered[lo:hi] = True
                pos += frame.samples
            return pos

        try:
            if seek_to > stream_start and tb is not None and stream.start_time is not None:
                container.seek(int(seek_to / tb), stream=stream, backward=True, any_frame=False)
            pos: int | None = None
            next_pts: int | None = None  # for streams without timestamps: count the samples decoded
            for frame in container.decode(stream):
                if frame.pts is None and tb is not None:
                    frame.pts = next_pts if next_pts is not None else int(stream.start_time or 0)
                    frame.time_base = tb
                if frame.pts is not None and tb is not None:
                    next_pts = int(frame.pts) + int(Fraction(frame.samples, frame.sample_rate) / tb)
                    if float(frame.pts * tb) > t_end + _TAIL_SECONDS:
                        break
                pos = place(resampler.resample(frame), pos)
            place(resampler.resample(None), pos)
        except av.error.FFmpegError as exc:
            raise _bad(path, f"has an audio track that cannot be decoded ({_reason(exc)})", _AUDIO_FIX) from exc
        except ValueError as exc:  # the resampler refuses a frame with an unusable layout or rate
            raise _bad(path, f"has an audio track that cannot be converted ({exc})", _AUDIO_FIX) from exc
    if out.shape[0] != channels:
        out = np.repeat(out, channels, axis=0)
    np.clip(out, -1.0, 1.0, out=out)
    return AudioClip(
        samples=out,
        sample_rate=sample_rate,
        start=start,
        padded_seconds=float(num_out - int(covered.sum())) / sample_rate,
        path=path,
        source_sample_rate=int(ctx.sample_rate or 0) or None,
        source_channels=source_channels or None,
        source_codec=ctx.name,
    )


def _aac_bitrate(requested: int, sample_rate: int, channels: int) -> int:
    """AAC stores at most 6144 bits per channel per 1024 samples; ask for more and the encoder refuses."""
    ceiling = 6144 * sample_rate // 1024 * channels
    return max(8000, min(requested, ceiling - 1000))


class AudioTrackWriter:
    """An AAC stream of ``container`` holding ``clip``, written piecewise so it interleaves with video.

    ``write_until(seconds)`` encodes the sound up to that time, ``finish()`` the rest and the encoder's delay.
    Clip rates AAC cannot store are resampled to 48 kHz by PyAV's encoder.
    """

    CHUNK = 4096  # samples per frame handed to the encoder (PyAV re-cuts them into 1024-sample AAC frames)

    def __init__(self, container: av.container.OutputContainer, clip: AudioClip, bitrate: int = 128_000) -> None:
        self.clip = clip
        rate = clip.sample_rate if clip.sample_rate in AAC_SAMPLE_RATES else 48000
        self.layout = "mono" if clip.channels == 1 else "stereo"
        stream = container.add_stream("aac", rate=rate)
        stream.layout = self.layout
        stream.bit_rate = _aac_bitrate(bitrate, rate, clip.channels)
        self.stream = stream
        self.container = container
        self.written = 0  # samples of the clip already encoded
        self.time_base = Fraction(1, clip.sample_rate)

    def _encode(self, upto: int) -> None:
        upto = min(upto, self.clip.num_samples)
        while self.written < upto:
            end = min(upto, self.written + self.CHUNK)
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(np.clip(self.clip.samples[:, self.written : end], -1.0, 1.0)),
                format="fltp",
                layout=self.layout,
            )
            frame.sample_rate = self.clip.sample_rate
            frame.pts = self.written
            frame.time_base = self.time_base
            self.container.mux(self.stream.encode(frame))
            self.written = end

    def write_until(self, seconds: float) -> None:
        self._encode(math.ceil(seconds * self.clip.sample_rate))

    def finish(self) -> None:
        self._encode(self.clip.num_samples)
        self.container.mux(self.stream.encode(None))


def as_audio_clip(audio: AudioClip | np.ndarray, sample_rate: int | None) -> AudioClip:
    """``audio`` as an AudioClip: an array ([N] or [channels, N], floats in [-1, 1]) needs its ``sample_rate``."""
    if isinstance(audio, AudioClip):
        if sample_rate is not None and sample_rate != audio.sample_rate:
            raise ValueError(f"audio_sample_rate {sample_rate} differs from the clip's own {audio.sample_rate}")
        return audio
    if sample_rate is None:
        raise ValueError("audio given as an array needs audio_sample_rate")
    samples = np.asarray(audio)
    if not np.issubdtype(samples.dtype, np.floating):
        raise ValueError(f"audio samples must be floats in [-1, 1], got {samples.dtype}")
    return AudioClip(samples, sample_rate)


__all__ = [
    "AAC_SAMPLE_RATES",
    "AudioClip",
    "AudioStreamInfo",
    "AudioTrackWriter",
    "as_audio_clip",
    "audio_stream_info",
    "has_audio",
    "read_audio",
]
