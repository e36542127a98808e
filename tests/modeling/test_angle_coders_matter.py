"""The angle coders matter: on near-square objects near the +-90 degree boundary of le90, heads
trained with CSL or PSC reach a lower orientation error than plain regression in the same number
of iterations (dev/angle_coder_experiment.py; the full run and its figures are in its output).

Mean orientation error in degrees after 300 iterations, seeds 0-4 (one thread, load ~4):
regression 7.8-9.9, CSL 1.5-1.8, PSC 1.1-1.2: CSL / regression <= 0.23 and PSC / regression
<= 0.15, against the asserted 0.5 (seed 0 only). At 150 iterations CSL was not yet reliable
(4.5 and 12.9 degrees on seeds 0 and 3, regression 11.4 and 11.7).
"""

import pytest
import torch
from script_loading import load_script

pytestmark = pytest.mark.slow  # trains three small CNNs (~40 s)

ITERS = 300
# CSL / PSC error must be below this fraction of the regression error.
ERROR_RATIO = 0.5


def test_csl_and_psc_beat_plain_regression_at_the_boundary():
    experiment = load_script("dev/angle_coder_experiment.py")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        errors = {
            name: experiment.train_and_evaluate(coder, seed=0, iters=ITERS)
            for name, coder in experiment.make_coders().items()
        }
    finally:
        torch.set_num_threads(n)
    assert errors["csl"] < ERROR_RATIO * errors["regression"], errors
    assert errors["psc"] < ERROR_RATIO * errors["regression"], errors


def test_orientation_error_is_modulo_180():
    experiment = load_script("dev/angle_coder_experiment.py")
    pred = torch.tensor([89.0, -89.0, 10.0, 0.0])
    true = torch.tensor([-89.0, 89.0, -10.0, 90.0])
    expected = torch.tensor([2.0, 2, 20, 90])
    torch.testing.assert_close(experiment.orientation_error(pred, true), expected)
