"""Learning from its user: the words and phrasing a person commits shape what comes next.

`store` (one SQLite file per profile), `model` (counts that fade with the words typed since),
`scorer` (any scorer mixed with the user's history, behind the Scorer interface),
`adaptation` (the profile's own copy of the recurrent model, trained on each commit), `profile`
(what the front ends use: learn, undo, forget, score).
"""

from .model import Lesson, UserLimitError, UserModel
from .profile import LearnOptions, Profile, Scoring, memo_key, scoring
from .scorer import UserScorer, UserWeights
from .store import UserStore, UserStoreError, default_path

__all__ = ["LearnOptions", "Lesson", "Profile", "Scoring", "UserLimitError", "UserModel",
           "UserScorer", "UserStore", "UserStoreError", "UserWeights", "default_path", "memo_key",
           "scoring"]
