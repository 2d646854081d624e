"""The IVR prompts: a catalogue of prompt keys, their files and default Mandarin texts.

Prompts live in `<data dir>/prompts/<file>`: 8 kHz, mono, 16-bit PCM WAV. At install or first
start `ensure_prompts` generates every missing one with espeak-ng (voice `cmn`) and sox. An
agency replaces a prompt with its own recording by putting a WAV under the same file name
(any rate/format sox reads can be converted with `convert_recording`); existing files are
never overwritten. `python -m calls.prompts [DATA_DIR]` generates the missing ones.

Errors:

    PromptError          espeak-ng/sox missing or failing, or a file that is not a usable prompt
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import tempfile
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000


@dataclass(frozen=True, slots=True)
class PromptText:
    """One prompt: the key flows use (callflows `Play(prompt)`), its file name, default text."""

    key: str
    file: str
    text: str

    @property
    def spoken(self) -> str:
        """The text as the synthesiser should say it: 110 is read "幺幺零", digit by digit."""
        return self.text.replace("110", "幺幺零")


CATALOGUE: dict[str, PromptText] = {
    p.key: p
    for p in (
        PromptText(
            "survey.question",
            "survey_question.wav",
            "您好，这里是县公安局110指挥中心回访。"
            "您对我们的处理结果满意请按1，基本满意请按2，不满意请按3。",
        ),
        PromptText("survey.thanks", "survey_thanks.wav", "感谢您对公安工作的支持，再见。"),
        PromptText(
            "duty_check.prompt", "duty_check_prompt.wav", "这里是110指挥中心查岗，请按1确认在岗。"
        ),
        PromptText("duty_check.thanks", "duty_check_thanks.wav", "查岗确认，谢谢。"),
        PromptText(
            "bridge.unit_confirm",
            "bridge_unit_confirm.wav",
            "这里是110指挥中心，有群众求助需要贵单位联动处置，请按1接入通话",
        ),
        PromptText(
            "bridge.unit_connecting", "bridge_unit_connecting.wav", "正在接通联动单位，请稍候。"
        ),
        PromptText(
            "reminder.prompt",
            "roster_reminder_prompt.wav",
            "您单位下周值班表尚未报备，请尽快登录系统报备。收到请按1。",
        ),
        PromptText("reminder.thanks", "roster_reminder_thanks.wav", "收到，谢谢。"),
    )
}


class PromptError(RuntimeError):
    """A prompt could not be generated or is not usable."""


@dataclass(frozen=True, slots=True)
class PromptInfo:
    """What a prompt file holds."""

    path: Path
    sample_rate: int
    channels: int
    sample_width: int
    duration_s: float
    rms_dbfs: float


def prompts_dir(data_dir: Path) -> Path:
    """Where the prompts live."""
    return data_dir / "prompts"


def prompt_path(data_dir: Path, key: str) -> Path:
    """The file of prompt `key` (KeyError for an unknown key)."""
    return prompts_dir(data_dir) / CATALOGUE[key].file


def _run(cmd: list[str]) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    except FileNotFoundError as exc:
        raise PromptError(f"{cmd[0]} is not installed") from exc
    except subprocess.CalledProcessError as exc:
        err = exc.stderr.decode(errors="replace").strip()
        raise PromptError(f"{cmd[0]} failed: {err}") from exc
    except subprocess.TimeoutExpired as exc:
        raise PromptError(f"{cmd[0]} timed out") from exc


def convert_recording(source: Path, target: Path, *, sox: str = "sox") -> None:
    """Convert any audio sox reads into an 8 kHz mono 16-bit WAV at `target` (atomically)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".wav", dir=target.parent)
    os.close(fd)
    try:
        _run([sox, str(source), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
              "-e", "signed-integer", tmp, "norm", "-3"])  # fmt: skip
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def synthesise(text: str, target: Path, *, espeak: str = "espeak-ng", sox: str = "sox") -> None:
    """Speak `text` with espeak-ng's Mandarin voice into an 8 kHz mono 16-bit WAV."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"
        _run([espeak, "-v", "cmn", "-s", "165", "-w", str(raw), text])
        convert_recording(raw, target, sox=sox)


def ensure_prompts(
    data_dir: Path, *, espeak: str = "espeak-ng", sox: str = "sox"
) -> dict[str, Path]:
    """Generate every missing prompt; returns key → path of all prompts (existing ones kept)."""
    paths: dict[str, Path] = {}
    for key, prompt in CATALOGUE.items():
        path = prompt_path(data_dir, key)
        if not path.exists():
            log.info("generating prompt %s into %s", key, path)
            synthesise(prompt.spoken, path, espeak=espeak, sox=sox)
        paths[key] = path
    return paths


def inspect_prompt(path: Path) -> PromptInfo:
    """Read a prompt file; PromptError unless it is 8 kHz mono 16-bit PCM with sound in it."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            frames = w.readframes(w.getnframes())
    except (OSError, wave.Error, EOFError) as exc:
        raise PromptError(f"{path}: not a readable WAV ({exc})") from exc
    if (rate, channels, width) != (SAMPLE_RATE, 1, 2):
        raise PromptError(f"{path}: {rate} Hz, {channels} channel(s), {8 * width}-bit; "
                          "prompts must be 8000 Hz mono 16-bit")  # fmt: skip
    samples = array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        raise PromptError(f"{path}: empty")
    mean_sq = sum(s * s for s in samples) / len(samples)
    rms_dbfs = -120.0 if mean_sq == 0 else 10 * math.log10(mean_sq / 32768**2)
    return PromptInfo(path, rate, channels, width, len(samples) / rate, rms_dbfs)


def main(argv: list[str] | None = None) -> int:
    """`python -m calls.prompts [DATA_DIR]`: generate missing prompts and list them."""
    args = sys.argv[1:] if argv is None else argv
    data_dir = Path(args[0]) if args else Path("var")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for key, path in ensure_prompts(data_dir).items():
        info = inspect_prompt(path)
        log.info("%-20s %s  %.1f s  %.1f dBFS", key, path, info.duration_s, info.rms_dbfs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
