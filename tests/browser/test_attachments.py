"""Attachments in Chromium: the file picker, drag and drop, paste, previews, sending, the files on the
page and after a reload; the plain form with scripting off; a refused file keeps the typed text."""

from __future__ import annotations

import base64

from playwright.sync_api import expect

from tests.support.browser import LONG, sign_up, wait_done
from tests.support.files import pdf, png

# Builds a File from base64 in the page and hands it to the composer as a drop or a paste would.
GIVE_FILE = """([event, b64, name, type]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  const form = document.querySelector("form.composer");
  if (event === "drop") {
    form.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    form.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
  } else {
    document.querySelector("form.composer textarea").dispatchEvent(
      new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true }));
  }
}"""


def give(page, event, content, name, kind):
    page.evaluate(GIVE_FILE, [event, base64.b64encode(content).decode(), name, kind])


def test_picker_and_drop_previews_send_and_reload(page, live_server, screenshot):
    sign_up(page, live_server, "pia")
    page.locator("#attachments").set_input_files(
        [{"name": "photo.png", "mimeType": "image/png", "buffer": png(320, 200)}]
    )
    give(page, "drop", pdf("first page", "second page"), "report.pdf", "application/pdf")
    previews = page.locator(".attach-previews li")
    expect(previews).to_have_count(2)
    expect(previews.nth(0).locator("img")).to_have_attribute("alt", "photo.png")
    expect(previews.nth(1)).to_contain_text("report.pdf")
    expect(previews.nth(1)).to_contain_text("2 pages")
    screenshot("attachments-previews")
    page.get_by_label("Message").fill("What are these?")
    page.get_by_role("button", name="Send").click()
    reply = page.locator(".message.assistant").last
    wait_done(reply)
    expect(reply.locator(".content")).to_contain_text("received 1 image, 320×200 PNG; 1 PDF, 2 pages")
    for _ in range(2):  # as sent, then after a reload
        files = page.locator(".message.user .attachments li")
        expect(files).to_have_count(2)
        expect(files.nth(0).locator("img")).to_have_js_property("naturalWidth", 320)
        expect(files.nth(1)).to_contain_text("report.pdf")
        page.reload()
    screenshot("attachments-sent")


def test_paste_an_image_and_remove_one_before_sending(page, live_server):
    sign_up(page, live_server, "paul")
    give(page, "paste", png(40, 30), "image.png", "image/png")
    give(page, "paste", png(50, 30), "image.png", "image/png")
    previews = page.locator(".attach-previews li")
    expect(previews).to_have_count(2)
    previews.nth(0).get_by_role("button").click()
    expect(previews).to_have_count(1)
    page.get_by_label("Message").fill("pasted")
    page.get_by_role("button", name="Send").click()
    reply = page.locator(".message.assistant").last
    wait_done(reply)
    expect(reply.locator(".content")).to_contain_text("received 1 image, 50×30 PNG")


def test_plain_form_without_scripting(browser, live_server):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        sign_up(page, live_server, "nora")
        page.locator("#attachments").set_input_files(
            [
                {"name": "a.png", "mimeType": "image/png", "buffer": png(24, 12)},
                {"name": "b.pdf", "mimeType": "application/pdf", "buffer": pdf("b")},
            ]
        )
        page.get_by_label("Message").fill("no script here")
        page.get_by_role("button", name="Send").click()
        expect(page.locator(".message.user .attachments li")).to_have_count(2, timeout=LONG)
        expect(page.locator(".message.assistant").last).to_have_attribute("data-status", "succeeded", timeout=LONG)
        expect(page.locator(".message.assistant .content").last).to_contain_text(
            "received 1 image, 24×12 PNG; 1 PDF, 1 page"
        )
    finally:
        context.close()


def test_a_refused_file_keeps_the_typed_text(page, live_server):
    sign_up(page, live_server, "rita")
    page.get_by_label("Message").fill("my careful words")
    # The browser believes it is a PNG; the server reads its bytes.
    page.locator("#attachments").set_input_files(
        [{"name": "cat.png", "mimeType": "image/png", "buffer": b'<svg xmlns="http://www.w3.org/2000/svg"/>'}]
    )
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".composer-error")).to_contain_text("not one of the allowed types", timeout=LONG)
    expect(page.get_by_label("Message")).to_have_value("my careful words")
    page.wait_for_load_state()  # the refusal is a new page: its scripts run before files are picked again
    # Refused in the page already: a type that is not allowed; the other file stays.
    page.locator("#attachments").set_input_files([{"name": "ok.png", "mimeType": "image/png", "buffer": png(5, 5)}])
    page.locator("#attachments").set_input_files([{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    expect(page.locator(".attach-error")).to_contain_text("notes.txt is not an image")
    expect(page.locator(".attach-previews li")).to_have_count(1)


def test_files_picked_before_the_attachment_script_arrives_are_all_kept(page, live_server):
    # The script loads on the first pick; each pick replaces the input's files, so a second pick made
    # while the script is still on its way must not lose the first (it did: one CI run saw it).
    held = []

    def hold(route):
        held.append(route)

    page.route("**/static/attachments.js", hold)
    sign_up(page, live_server, "otto")
    page.locator("#attachments").set_input_files([{"name": "first.png", "mimeType": "image/png", "buffer": png(5, 5)}])
    page.locator("#attachments").set_input_files([{"name": "second.png", "mimeType": "image/png", "buffer": png(6, 6)}])
    page.wait_for_function("document.querySelector('script[src$=\"attachments.js\"]') !== null")
    expect(page.locator(".attach-previews li")).to_have_count(0)
    assert len(held) == 1, "the script is requested once"
    held[0].continue_()
    expect(page.locator(".attach-previews li")).to_have_count(2)
    expect(page.locator(".attach-previews li img").nth(0)).to_have_attribute("alt", "first.png")
    expect(page.locator(".attach-previews li img").nth(1)).to_have_attribute("alt", "second.png")
    assert page.locator("#attachments").evaluate("input => Array.from(input.files, (f) => f.name)") == [
        "first.png",
        "second.png",
    ]
