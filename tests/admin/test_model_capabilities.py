"""The Models page says which models read images and PDFs (LiteLLM's model information, else the
provider) and an admin can override it; the chat follows at once."""

import io
import re

import pytest

from tests.support.admin import post
from tests.support.files import png
from tests.support.forms import page_tokens


@pytest.fixture
def app_config(app_config):
    return {**app_config, "OPENAI_API_KEY": "sk-test-not-called"}


def ticked(client, column):
    page = client.get("/admin/models").get_data(as_text=True)
    return set(re.findall(rf'name="{column}" value="([^"]+)"[^>]*checked', page))


def test_override_lets_a_model_read_images(app, client, admin):
    images = ticked(client, "reads_images")
    assert {"gpt-4o", "echo"} <= images and "gpt-3.5-turbo" not in images
    assert "gpt-4o" in ticked(client, "reads_pdf")
    page = client.get("/admin/models").get_data(as_text=True)
    enabled = re.findall(r'name="enabled" value="([^"]+)"', page)
    data = {
        "enabled": enabled,
        "default_model": "",
        "capabilities_shown": "1",
        "reads_images": sorted(images | {"gpt-3.5-turbo"}),
        "reads_pdf": sorted(ticked(client, "reads_pdf")),
    }
    assert post(client, "/admin/models", data, page="/admin/models").status_code == 302
    assert "gpt-3.5-turbo" in ticked(client, "reads_images")
    csrf, token = page_tokens(client, "/chat/")
    response = client.post(
        "/chat/",
        data={
            "content": "look",
            "model": "gpt-3.5-turbo",
            "csrf_token": csrf,
            "submission_token": token.group(1),
            "attachments": [(io.BytesIO(png()), "a.png")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    audit = client.get("/admin/audit").get_data(as_text=True)
    assert "models.capabilities" in audit
