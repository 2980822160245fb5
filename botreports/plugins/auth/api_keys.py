"""API keys: ``X-API-Key`` header, or the ``api_key`` query parameter for chat
scripts that cannot send headers. Keys are stored hashed."""
import threading
import time
import weakref

from ... import hookimpl
from ...core.errors import InvalidCredentials
from ...core.models import Principal
from ...core.security import hash_secret

#: Seconds a key found in the store is trusted without asking again. Polling clients ask
#: many times a second; each store read costs a round of the interpreter lock under load.
#: A revoked key stops working within this time.
KNOWN_FOR = 5.0
_known = weakref.WeakKeyDictionary()  # Reports -> {key hash: (expires, ApiKey)}
_lock = threading.Lock()


def _find(reports, key_hash):
    now = time.monotonic()
    with _lock:
        cache = _known.setdefault(reports, {})
        hit = cache.get(key_hash)
    if hit is not None and hit[0] > now:
        return hit[1]
    found = reports.store.find_api_key(key_hash)
    if found is not None:
        with _lock:
            if len(cache) > 10_000:  # keys are few; a flood of different ones must not grow memory
                cache.clear()
            cache[key_hash] = (now + KNOWN_FOR, found)
    return found


@hookimpl
def authenticate(request, reports):
    key = request.header("X-API-Key") or request.query.get("api_key")
    if not key:
        return None
    found = _find(reports, hash_secret(key))
    if found is None:
        raise InvalidCredentials("The API key is not valid")
    return Principal(id=found.id, org_id=found.org_id, roles={found.role}, name=found.name, via="api_key")
