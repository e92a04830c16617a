"""Trust: a room's secret, sealed frames, and the keys that bind names to sessions.

* :class:`Secret` (``secret.py``): the credential, from a value, a file or the environment;
* ``seal.py``: the sealed frame format, its MAC and signature, the replay window (pure);
* :class:`Guard` (``guard.py``): what one socket seals with and accepts (the
  :class:`patterns.Guard` shape);
* :class:`HostKeys` / :class:`MemberKeys` (``room.py``): the keys of a room, its sessions.

``docs/security.md`` describes the threat model and the protocol.
"""

from consensus.trust.guard import Guard, Key
from consensus.trust.room import HostKeys, MemberKeys, PublicKeys
from consensus.trust.secret import ENV_SECRET, Secret, as_secret

__all__ = ["ENV_SECRET", "Guard", "HostKeys", "Key", "MemberKeys", "PublicKeys", "Secret", "as_secret"]
