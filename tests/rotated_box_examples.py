"""Hand-worked rotated boxes shared by the dataset-format tests.

``BOX_30``: a box 40 x 10 px centred at (100, 80), turned 30 degrees counter-clockwise on screen.
By hand: u = (cos 30, -sin 30), v = (sin 30, cos 30); 20 u = (17.3205, -10), 5 v = (2.5, 4.3301),
so the corners c -+ 20 u -+ 5 v (``CORNERS_30``) are (80.18, 85.67), (115.18, 65.67),
(120.18, 74.33), (85.18, 94.33): the right end is higher on screen.
"""

import math

_C30, _S30 = math.cos(math.radians(30)), math.sin(math.radians(30))
BOX_30 = [100.0, 80.0, 40.0, 10.0, 30.0]
CORNERS_30 = [
    (100 - 20 * _C30 - 5 * _S30, 80 + 20 * _S30 - 5 * _C30),
    (100 + 20 * _C30 - 5 * _S30, 80 - 20 * _S30 - 5 * _C30),
    (100 + 20 * _C30 + 5 * _S30, 80 - 20 * _S30 + 5 * _C30),
    (100 - 20 * _C30 + 5 * _S30, 80 + 20 * _S30 + 5 * _C30),
]
