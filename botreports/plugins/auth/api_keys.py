"""API keys: ``X-API-Key`` header, or the ``api_key`` query parameter for chat
scripts that cannot send headers. Keys are stored hashed."""
from ... import hookimpl
from ...core.errors import InvalidCredentials
from ...core.models import Principal
from ...core.security import hash_secret


@hookimpl
def authenticate(request, reports):
    key = request.header("X-API-Key") or request.query.get("api_key")
    if not key:
        return None
    found = reports.store.find_api_key(hash_secret(key))
    if found is None:
        raise InvalidCredentials("The API key is not valid")
    return Principal(id=found.id, org_id=found.org_id, roles={found.role}, name=found.name, via="api_key")
