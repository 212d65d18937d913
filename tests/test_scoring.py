"""The one scoring loop (`score_corpus`) over a corpus defined here, as a new dataset would be."""
import numpy as np
import pytest

from conftest import song, tiny_bundle
from vocalsep.evaluate import Corpus, Track, bss_eval_v3, score_corpus
from vocalsep.separator import Separator


class Generated(Corpus):
    """Two stereo 44.1 kHz tracks: a harmonic voice and a chord, as every dataset would give them."""

    rate = 44100

    def __init__(self):
        self.seen = []

    def __len__(self):
        return 2

    def tracks(self):
        for i in range(2):
            mix = song(1.0, self.rate, 2, seed=i)
            voice = 0.5 * mix
            yield Track(f"t{i}", self.rate, mix, {"vocals": voice, "accompaniment": mix - voice})

    def score(self, track, est, out):
        self.seen.append(track.name)
        sdr, _, _ = bss_eval_v3(np.stack([track.references["vocals"][0], track.references["accompaniment"][0]]),
                                np.stack([est["vocals"][0], est["accompaniment"][0]]))
        return track.name, float(sdr[0])

    def summarize(self, scores, out):
        return dict(scores)


def test_one_loop_separates_writes_and_rescores_estimates_identically(tmp_path):
    sep = Separator(tiny_bundle(), segment_frames=60)
    corpus = Generated()
    calls = []
    first = score_corpus(corpus, sep, tmp_path / "out", progress=lambda done, total: calls.append((done, total)))
    assert set(first) == {"t0", "t1"} and all(np.isfinite(v) for v in first.values())
    assert calls == [(1, 2), (2, 2)]
    assert (tmp_path / "out" / "t1" / "vocals.wav").is_file()  # the corpus's estimates layout
    again = score_corpus(Generated(), estimates_dir=tmp_path / "out")
    assert again == first  # float estimates read back score the same


def test_an_oracle_needs_no_model_and_separate_only_scores_nothing(tmp_path):
    corpus = Generated()
    ideal = score_corpus(corpus, None, oracle="irm")
    assert all(v > 20 for v in ideal.values())  # the true ratio mask recovers a scaled copy almost exactly
    corpus = Generated()
    assert score_corpus(corpus, None, tmp_path / "o", separate_only=True, oracle="ibm") == {"tracks": {}, "summary": {}}
    assert corpus.seen == [] and (tmp_path / "o" / "t0" / "accompaniment.wav").is_file()


def test_estimates_of_the_wrong_rate_or_length_are_named_and_refused(tmp_path):
    import soundfile as sf

    from vocalsep.data import DatasetError

    score_corpus(Generated(), None, tmp_path / "e", separate_only=True, oracle="ibm")
    sf.write(tmp_path / "e" / "t0" / "vocals.wav", np.zeros((100, 2), np.float32), 44100)
    with pytest.raises(DatasetError, match="t0: estimate vocals is 0.00 s long, the track 1.00 s"):
        score_corpus(Generated(), estimates_dir=tmp_path / "e")
    sf.write(tmp_path / "e" / "t0" / "vocals.wav", np.zeros((48000, 2), np.float32), 48000)
    with pytest.raises(DatasetError, match="t0: estimate vocals is at 48000 Hz, the track at 44100 Hz"):
        score_corpus(Generated(), estimates_dir=tmp_path / "e")
