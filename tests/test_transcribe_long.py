"""Long recordings: a 3-minute talk of many sentences, a 10-minute recording that is mostly silence, and how speech is
cut into Whisper's 30 s windows."""

import pytest

import pipelines
from pipelines.core.io import MAX_SECONDS, SAMPLE_RATE, load_audio
from pipelines.speech.chunks import WINDOW, speech_windows
from tests.transcribe_checks import assert_well_formed, concatenate, recognisable

pytestmark = pytest.mark.slow


# Sentence -> key words a listener would check for.
SENTENCES = {
    "The museum opens at nine in the morning and closes at six in the evening.": {"museum", "morning", "evening"},
    "Our train to the mountains was delayed by heavy snow.": {"train", "mountains", "snow"},
    "Please bring a blanket and a flashlight to the camping trip.": {"blanket", "flashlight", "camping"},
    "The chef added garlic, lemon and fresh parsley to the soup.": {"garlic", "lemon", "soup"},
    "A small boat drifted slowly across the quiet harbor.": {"boat", "harbor"},
    "My grandmother keeps three cats and a very old piano.": {"grandmother", "cats", "piano"},
    "The library will be closed on Monday for repairs.": {"library", "monday", "repairs"},
    "Scientists measured the temperature of the ocean near the island.": {"scientists", "ocean", "island"},
    "He painted the kitchen yellow and the bedroom green.": {"kitchen", "yellow", "bedroom", "green"},
    "The football match ended in a draw after extra time.": {"football", "match", "draw"},
    "She wrote a letter to her brother who lives in Canada.": {"letter", "brother", "canada"},
    "Farmers harvest apples and pears at the end of summer.": {"farmers", "apples", "summer"},
    "The airport was crowded with families going on holiday.": {"airport", "families", "holiday"},
    "A thunderstorm knocked out the power in the whole village.": {"thunderstorm", "power", "village"},
    "The teacher asked the students to read the first chapter.": {"teacher", "students", "chapter"},
    "We watched the sunset from the top of the hill.": {"sunset", "hill"},
    "The doctor told him to drink more water and sleep early.": {"doctor", "water", "sleep"},
    "A yellow taxi stopped in front of the hotel.": {"taxi", "hotel"},
    "The children built a sandcastle on the beach.": {"children", "sandcastle", "beach"},
    "The bakery sells fresh bread and chocolate cake every day.": {"bakery", "bread", "chocolate", "cake"},
    "The engineer repaired the bridge before the winter.": {"engineer", "bridge", "winter"},
    "An orchestra played music in the park on Sunday.": {"orchestra", "music", "park", "sunday"},
    "The garden is full of roses, tulips and sunflowers.": {"garden", "roses", "tulips"},
    "The river flooded the road after three days of rain.": {"river", "road", "rain"},
    "My neighbor fixed his bicycle in the garage.": {"neighbor", "bicycle", "garage"},
    "The astronaut looked down at the earth from the space station.": {"astronaut", "earth", "station"},
    "A pharmacist explained how to take the medicine.": {"pharmacist", "medicine"},
    "The volcano erupted and covered the town in ash.": {"volcano", "town", "ash"},
    "The company hired twenty new workers in January.": {"company", "workers", "january"},
    "Penguins live in cold places near the south pole.": {"penguins", "cold", "south"},
    "The violin lesson starts at four on Thursday.": {"violin", "lesson", "thursday"},
    "Our dog chased a squirrel up the old oak tree.": {"dog", "squirrel", "tree"},
    "The newspaper printed a photo of the president.": {"newspaper", "photo", "president"},
    "Grandfather told us a story about the war.": {"grandfather", "story", "war"},
    "The hospital opened a new wing for children.": {"hospital", "wing", "children"},
    "Finally, the meeting ended and everyone went home happy.": {"meeting", "everyone", "home"},
}
GAPS = (0.6, 1.2, 2.5, 0.9)  # seconds of silence before each sentence, in turn: pauses of a speaker


@pytest.fixture(scope="module")
def transcriber():
    return pipelines.load("transcribe", "whisper-tiny.en-embedded")


def test_a_three_minute_talk_comes_back_sentence_by_sentence(transcriber, speak, tmp_path):
    talk = tmp_path / "talk.wav"
    spoken = [speak(sentence) for sentence in SENTENCES]
    starts = concatenate(spoken, talk, gaps=[GAPS[i % len(GAPS)] for i in range(len(spoken))], total=180)
    reported = []
    [result] = transcriber([talk], progress=reported.append)

    assert result.duration == pytest.approx(180, abs=0.01)
    assert_well_formed(result)
    assert max(s.end - s.start for s in result.segments) < 15  # subtitle-sized: no cue lasts a whole 30 s window
    for (sentence, key_words), start in zip(SENTENCES.items(), starts):
        # a segment around where it was said says it
        near = " ".join(s.text for s in result.segments if s.start - 1 <= start <= s.end + 1)
        assert recognisable(key_words, near), (sentence, start, near)
    assert len(reported) > 10 and reported == sorted(reported) and reported[-1] == 1.0  # the bar moved all along


def test_a_ten_minute_recording_finds_each_sentence_at_its_time(transcriber, speak, tmp_path):
    recording = tmp_path / "ten_minutes.wav"
    said = {
        "The library will be closed on Monday.": {"library", "monday"},
        "A yellow taxi stopped at the hotel.": {"taxi", "hotel"},
        "The children built a sandcastle.": {"children", "sandcastle"},
        "Penguins live near the south pole.": {"penguins", "south"},
    }
    starts = concatenate([speak(s) for s in said], recording, gaps=[5, 190, 190, 190], total=MAX_SECONDS)
    [result] = transcriber([recording])  # exactly the longest recording allowed

    assert result.duration == MAX_SECONDS
    assert_well_formed(result)
    for (sentence, key_words), start in zip(said.items(), starts):
        [segment] = [s for s in result.segments if abs(s.start - start) < 1.5]
        assert recognisable(key_words, segment.text), (sentence, start, segment)


def test_speech_is_cut_at_pauses_into_as_few_and_as_even_windows_as_fit(speak, tmp_path):
    talk = tmp_path / "talk.wav"
    starts = concatenate([speak(s) for s in list(SENTENCES)[:10]], talk, gaps=[0.4] * 10)  # ~40 s, short pauses
    windows = speech_windows(load_audio(talk))
    lengths = [(w.end - w.start) / SAMPLE_RATE for w in windows]
    assert len(windows) == 2 and max(lengths) <= WINDOW  # what packing each window to the brim would also need
    assert max(lengths) - min(lengths) < 5  # not 30 s + 20 s: a batch decodes as long as its longest window
    for start in starts:  # every sentence is in a window
        assert any(w.start / SAMPLE_RATE <= start < w.end / SAMPLE_RATE for w in windows), start
    cut = windows[0].end / SAMPLE_RATE  # in the pause before a sentence, not in the middle of one
    assert any(-0.2 < start - cut < 1.0 for start in starts), (cut, starts)


@pytest.mark.parametrize(
    "windows, workers, sizes",
    [
        (1, 2, [1]),
        (3, 2, [1, 1, 1]),
        (9, 2, [2, 2, 2, 2, 1]),  # ~4 minutes of speech: the bar moves after each round of two groups
        (16, 2, [2] * 8),
        (40, 2, [5] * 8),
        (70, 2, [7] * 10),
        (5, 1, [5]),
        (9, 1, [5, 4]),
    ],
)
def test_windows_are_shared_evenly_between_the_decoding_workers(windows, workers, sizes):
    from pipelines.speech.chunks import Chunk
    from pipelines.speech.faster import WINDOW_BATCH, _groups

    chunks = [Chunk(i, i + 1) for i in range(windows)]
    groups = _groups(chunks, workers)
    assert [len(g) for g in groups] == sizes and max(sizes) <= WINDOW_BATCH
    assert [c for g in groups for c in g] == chunks  # consecutive, in order, each once


def test_two_decoding_workers_give_the_segments_of_one(speak, tmp_path):
    from pipelines.speech.faster import FasterWhisper

    loaded = pipelines.load("transcribe", "whisper-tiny.en-embedded")
    one, two = (FasterWhisper(loaded.spec, loaded.device, loaded.dtype, loaded.model, workers) for workers in (1, 2))
    sentences = [
        "the museum opens at nine in the morning",
        "our train to the mountains was delayed by heavy snow",
        "please bring a blanket and a flashlight to the camping trip",
    ] * 4
    talk = tmp_path / "talk.wav"
    concatenate([speak(s) for s in sentences], talk, gaps=[0.6] * len(sentences))
    assert len(speech_windows(load_audio(talk))) >= 2  # two groups, decoded at once
    [heard] = two([talk])
    assert heard.segments == one([talk])[0].segments
    assert recognisable({"delayed", "heavy", "snow"}, heard.text)
