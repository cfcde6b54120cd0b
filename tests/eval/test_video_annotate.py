from __future__ import annotations

import numpy as np
import pytest

from sfbench.eval.video import BANNER_PX, FAILURE_RGB, NEUTRAL_RGB, SUCCESS_RGB, annotate


def _bottom_colour(frame):
    """The banner colour below the render (its most common pixel)."""
    banner = frame[-BANNER_PX:].reshape(-1, 3)
    values, counts = np.unique(banner, axis=0, return_counts=True)
    return tuple(int(v) for v in values[counts.argmax()])


@pytest.mark.parametrize(("success", "colour"), [(True, SUCCESS_RGB), (False, FAILURE_RGB)])
def test_outcome_bar_appears_only_at_the_end_and_is_held(success, colour):
    frames = [np.full((40, 64, 3), 10 * i, np.uint8) for i in range(5)]
    out = annotate(frames, "pick up the bowl", "SUCCESS" if success else "FAILURE", success,
                   steps=[0, 4, 8, 12, 14], hold=3)
    assert len(out) == 5 + 3 and out[0].shape == (40 + 2 * BANNER_PX, 64, 3)
    assert [_bottom_colour(f) for f in out[:4]] == [NEUTRAL_RGB] * 4, "no verdict before the episode ends"
    assert [_bottom_colour(f) for f in out[4:]] == [colour] * 4
    assert not np.array_equal(out[0][-BANNER_PX:], out[1][-BANNER_PX:]), "the step counter changes between frames"


def test_step_numbers_must_match_the_frames():
    with pytest.raises(ValueError, match="2 step numbers for 3 frames"):
        annotate([np.zeros((8, 8, 3), np.uint8)] * 3, "x", "y", True, steps=[0, 1])
