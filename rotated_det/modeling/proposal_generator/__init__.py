from .oriented_rpn import OrientedRPN
from .proposal_utils import add_ground_truth_to_proposals, find_top_rrpn_proposals
from .rpn import RPN
from .rpn_head import StandardRPNHead
from .rrpn import RRPN

__all__ = [
    "OrientedRPN",
    "RPN",
    "RRPN",
    "StandardRPNHead",
    "add_ground_truth_to_proposals",
    "find_top_rrpn_proposals",
]
