"""Drives sources-api through a client generated from openapi/sources-api.json.

Usage: proof.py <generated client dir> <base url> <psk>

Creates a source, an application and an authentication with the generated client only, reads
each back, and checks what came back. Exits non-zero (with the reason) on any difference.
"""

import sys
import uuid

sys.path.insert(0, sys.argv[1])

from client import AuthenticatedClient  # noqa: E402
from client.api.application_types import application_types_list  # noqa: E402
from client.api.applications import applications_create, applications_get  # noqa: E402
from client.api.authentications import authentications_create, authentications_get  # noqa: E402
from client.api.source_types import source_types_list  # noqa: E402
from client.api.sources import sources_create, sources_get, sources_list_applications  # noqa: E402
from client.models import (  # noqa: E402
    ApplicationCreateRequest,
    ApplicationTypesListFilter,
    AuthenticationCreateRequest,
    Source,
    SourceCreateRequest,
    SourceTypesListFilter,
)
from client.models.application import Application  # noqa: E402
from client.models.authentication import Authentication  # noqa: E402


def expect(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


base_url, psk = sys.argv[2], sys.argv[3]
api = AuthenticatedClient(
    base_url=base_url,
    token=psk,
    prefix="",
    auth_header_name="x-rh-sources-psk",
    headers={"x-rh-sources-org-id": "client-proof"},
    raise_on_unexpected_status=True,
)

filt = SourceTypesListFilter.from_dict({"name": "amazon"})
types = source_types_list.sync(client=api, filter_=filt)
expect(types.meta.count == 1, f"one amazon source type, got {types.meta.count}")
amazon_id = types.data[0].id
expect(types.data[0].name == "amazon", "the amazon source type")

cost_filter = ApplicationTypesListFilter.from_dict({"name": "/insights/platform/cost-management"})
app_types = application_types_list.sync(client=api, filter_=cost_filter)
expect(app_types.meta.count == 1, "one cost-management application type")
cost_id = app_types.data[0].id

name = f"proof-{uuid.uuid4()}"
source = sources_create.sync(client=api, body=SourceCreateRequest(name=name, source_type_id=amazon_id))
expect(isinstance(source, Source), f"source created: {source}")
expect(source.name == name and source.source_type_id == amazon_id, "source fields")

app = applications_create.sync(
    client=api,
    body=ApplicationCreateRequest.from_dict(
        {"source_id": source.id, "application_type_id": cost_id, "extra": {"bucket": "proof-bucket"}}
    ),
)
expect(isinstance(app, Application), f"application created: {app}")

auth = authentications_create.sync(
    client=api,
    body=AuthenticationCreateRequest.from_dict(
        {
            "resource_type": "Application",
            "resource_id": app.id,
            "authtype": "arn",
            "username": "arn:aws:iam::123456789012:role/proof",
            "password": "never-shown",
        }
    ),
)
expect(isinstance(auth, Authentication), f"authentication created: {auth}")

got_source = sources_get.sync(client=api, id=source.id)
expect(got_source.to_dict() == source.to_dict(), "source reads back as created")
got_app = applications_get.sync(client=api, id=app.id)
expect(got_app.source_id == source.id and got_app.to_dict()["extra"] == {"bucket": "proof-bucket"}, "application reads back")
got_auth = authentications_get.sync(client=api, id=auth.id)
expect(got_auth.username == "arn:aws:iam::123456789012:role/proof", "authentication reads back")
expect("password" not in got_auth.to_dict(), "no password in the read")
apps = sources_list_applications.sync(client=api, source_id=source.id)
expect(apps.meta.count == 1, "the source lists its application")

print("client proof: source, application and authentication created and read back")
