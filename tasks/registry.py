"""The task table: every application of the suite, by name. Plain imports, no registries by decorator."""
from __future__ import annotations

from tasks.common.errors import InputError
from tasks.common.task import Task
from tasks.forecast import forecast
from tasks.forecast.data import ForecastDataModule
from tasks.forecast.model import ForecastModel
from tasks.music.data import MelodyDataModule
from tasks.music.melody_model import MelodyModel
from tasks.music.pianoroll_data import PianoRollDataModule
from tasks.music.pianoroll_model import PianoRollModel
from tasks.music import sample as music_sample
from tasks.speech import transcribe
from tasks.speech.data import SpeechDataModule
from tasks.speech.model import SpeechModel
from tasks.translation import translate
from tasks.translation.data import TranslationDataModule
from tasks.translation.model import TranslationModel
from tasks.video import classify as video_classify
from tasks.video.data import VideoDataModule
from tasks.video.model import VideoModel

TASKS: dict[str, Task] = {
    task.name: task
    for task in [
        Task(
            name="music",
            summary="melody generation (LSTM language model over 16th-note events, Bach chorales by default)",
            model=MelodyModel,
            data=MelodyDataModule,
            links=(("data.vocab_size", "model.vocab_size"), ("data.min_pitch", "model.min_pitch")),
            commands={"sample": music_sample.main},
            after_training=("make sample TASK={task}   (or: lstm-suite sample {task} --ckpt {ckpt})",),
        ),
        Task(
            name="music-pianoroll",
            summary="polyphonic music (88-key piano rolls, JSB Chorales split; LSTM with a NADE or Bernoulli output)",
            model=PianoRollModel,
            data=PianoRollDataModule,
            links=(("data.keys", "model.keys"),),
            commands={"sample": music_sample.main_pianoroll},
            after_training=("make sample TASK={task}   (or: lstm-suite sample {task} --ckpt {ckpt})",),
        ),
        Task(
            name="translation",
            summary="attention LSTM seq2seq with beam search and BLEU (numbers en->fr offline by default)",
            model=TranslationModel,
            data=TranslationDataModule,
            links=(("data.vocab_size", "model.vocab_size"),),
            commands={"translate": translate.main},
            after_training=('make translate CKPT={ckpt} TEXT="two hundred and forty-one"',),
        ),
        Task(
            name="speech",
            summary="speech recognition: CTC on a BiLSTM encoder (espeak-ng corpus synthesized offline by default)",
            model=SpeechModel,
            data=SpeechDataModule,
            links=(("data.vocab_size", "model.vocab_size"), ("data.n_mels", "model.n_mels")),
            parse_links=(("model.subsampling", "data.subsampling"),),
            commands={"transcribe": transcribe.main},
            after_training=("make transcribe CKPT={ckpt} AUDIO=clip.wav",),
        ),
        Task(
            name="forecast",
            summary="time-series forecasting: the Keras LSTM(50) example on real series (Mauna Loa weekly CO2 by default)",
            model=ForecastModel,
            data=ForecastDataModule,
            links=(("data.input_size", "model.input_size"), ("data.horizon", "model.horizon"),
                   ("data.timesteps", "model.timesteps")),
            commands={"forecast": forecast.main},
            after_training=("make forecast CKPT={ckpt} HORIZON=52",),
        ),
        Task(
            name="video",
            summary="activity recognition: LRCN, a CNN per frame and an LSTM over time (synthetic motion clips by default)",
            model=VideoModel,
            data=VideoDataModule,
            links=(("data.class_names", "model.class_names"), ("data.frames", "model.frames"),
                   ("data.cache_frames", "model.cache_frames"), ("data.cache_fps", "model.cache_fps"),
                   ("data.height", "model.height"),
                   ("data.width", "model.width"), ("data.crop", "model.crop")),
            parse_links=(("model.inputs", "data.inputs"),),  # a flow stream: the data builds the flow cache
            commands={"classify": video_classify.main},
            after_training=("make classify CKPT={ckpt} VIDEO=clip.mp4",),
        ),
    ]
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise InputError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
    return TASKS[name]

