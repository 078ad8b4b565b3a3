"""The environment images one test built, found by its repositories' names.

Docker tests run on two workers against one daemon: a test that counted or removed
every environment image also counted or removed the other worker's builds (CI saw an
image vanish between a build and the next line of the test that built it). A test
names its repositories with its own ``unique`` id and looks only at images built for
them: the repository label is the slug of the cache directory, which starts with the
repository's name.
"""

from __future__ import annotations

import docker

from shared.environments.key import LABEL_REPOSITORY, repository_slug

UNTAGGED = "<none>:<none>"


def environment_images(client: docker.DockerClient, name_prefix: str) -> set[str]:
    """Tags of the environment images of repositories whose name starts with
    ``name_prefix`` (untagged ones left out: a tag is what a build makes)."""
    slug = repository_slug(name_prefix)
    return {
        tag
        for image in client.api.images(filters={"label": LABEL_REPOSITORY})
        if (image.get("Labels") or {}).get(LABEL_REPOSITORY, "").startswith(slug)
        for tag in image.get("RepoTags") or ()
        if tag != UNTAGGED
    }


def remove_environment_images(client: docker.DockerClient, name_prefix: str) -> None:
    """Remove what ``environment_images`` finds (hundreds of MB each)."""
    for tag in environment_images(client, name_prefix):
        client.api.remove_image(tag, force=True)
