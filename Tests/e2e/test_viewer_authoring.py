"""The viewer's binding editor in headless Chromium against the real server, on a copy of the demo plant: a label
binding picked in the inspect panel is previewed live (in the form and on the 3D label, following new values,
nothing sent), saved into bindings.json (PUT, applied live: an independent client sees the new label as a delta, no
keyframe); an invalid edit shows the server's reason verbatim and writes nothing, and cancel takes the preview
away; with authentication only admins see the editor at all."""
import json
import math

import pytest

from device import Device
from test_ingest import label, post
from test_reload import keyframes, plant as copy_plant, start
from test_security import SECRET, jwt
from test_viewer_engineer import browse, drawn

PRESS = "hall-a/line-01/press-01"
TEMP = PRESS + "/temp"
LIGHT = PRESS + "/light"
# The values the test posts hold still: without it they turn stale 5 s after the last one (the presses' catalog
# rate), and labels say so.
STILL = {"staleness": {"enabled": False}}


@pytest.fixture(scope="module")
def authoring(tmp_path_factory):
    """An open-mode server (no simulator) on a copy of the demo plant, watched every 200 ms."""
    tmp = tmp_path_factory.mktemp("authoring")
    dst = copy_plant(tmp)
    server = start(tmp, dst, **STILL)
    yield server, dst
    assert server.stop() == 0


def temperature(server, value, quality="good"):
    status, body = post(server, {"updates": [{"twin": PRESS, "property": "temperature", "value": value, "quality": quality}]})
    assert status == 200, body


async def choose(page, selector, value):
    """Picks `value` in a select as a user would (the option must exist)."""
    got = await page.eval(f"(() => {{ const s = document.querySelector({json.dumps(selector)}); s.value = {json.dumps(value)}; "
                          "s.dispatchEvent(new Event('change', {bubbles: true})); return s.value; })()")
    assert got == value, (selector, value, got)


async def fill(page, selector, text):
    """Types `text` into an input (one input event)."""
    await page.eval(f"(() => {{ const i = document.querySelector({json.dumps(selector)}); i.value = {json.dumps(text)}; "
                    "i.dispatchEvent(new Event('input', {bubbles: true})); })()")


async def open_editor(page, machine=PRESS):
    """Selects `machine`, waits for its values, opens "Edit bindings"."""
    assert await page.eval(f"sceneStream.select({json.dumps(machine)})") == machine
    await page.wait(f"sceneStream.inspect && sceneStream.inspect.twin === {json.dumps(machine)} && sceneStream.inspect.properties.temperature",
                    what="the inspect panel filled")
    await page.wait("!document.getElementById('author').hidden", what="the authoring section shown")
    await page.eval("document.querySelector('#author summary').click()")
    await page.wait("sceneStream.authoring().open && sceneStream.authoring().draft && sceneStream.authoring().file", what="the editor open")


def preview_label(text):
    """JS: the 3D label of the temperature node shows `text`, marked as a preview."""
    return (f"[...document.querySelectorAll('.labels .label.preview')].some(l => l.textContent === {json.dumps(text)} "
            f"&& l.dataset.node === String(sceneStream.plant.indexOf({json.dumps(TEMP)})))")


def output(text):
    return f"document.getElementById('author-output').textContent === {json.dumps(text)}"


def colour_of(node):
    return f"sceneStream.plant.nodes.get(sceneStream.plant.indexOf({json.dumps(node)})).color"


def blend(a, b, t):
    """BindingMap.blend, written from the Swift (each channel rounded half away from zero)."""
    out = 0
    for shift in (24, 16, 8, 0):
        ca, cb = (a >> shift) & 255, (b >> shift) & 255
        out |= math.floor(ca + (cb - ca) * t + 0.5) << shift
    return out


def test_a_label_binding_is_previewed_live_and_saved_for_every_client_as_a_delta(authoring):
    server, dst = authoring
    temperature(server, 71)
    before = json.loads((dst / "bindings.json").read_text())

    async def test(b):
        page = await b.open(f"http://127.0.0.1:{server.port}/?user=author")
        await drawn(page)
        await page.wait("sceneStream.authoring().allowed === true", what="authoring allowed (GET bindings.json answered 200)")
        await open_editor(page)
        nodes = await page.eval("[...document.getElementById('author-node').options].map(o => o.value)")
        assert nodes[0] == PRESS and TEMP in nodes and LIGHT in nodes and PRESS + "/ram" in nodes, nodes
        await choose(page, "#author-node", TEMP)
        # What is bound to the node now is listed (the demo's "{value} °C").
        assert "{value} °C" in await page.eval("document.getElementById('author-bound').textContent")
        await choose(page, "#author-property", "temperature")
        await choose(page, "#author-field", "label")
        await choose(page, "#author-kind", "format")
        # Every press (the demo's style), or only this one.
        assert await page.eval("[document.getElementById('author-twins').value, document.getElementById('author-pattern').value]") == ["*/*/press-*", "{twin}/temp"]
        await choose(page, "#author-scope", "one")
        assert await page.eval("[document.getElementById('author-twins').value, document.getElementById('author-pattern').value]") == [PRESS, TEMP]
        await choose(page, "#author-scope", "all")
        await fill(page, "#author-format", "{value} deg")
        await fill(page, "#author-precision", "0")
        await page.wait(output("71 deg"), what="the preview in the form")
        await page.wait(preview_label("71 deg"), what="the preview on the 3D label")
        assert "replaces binding #11" in await page.eval("document.getElementById('author-plan').textContent")

        # The preview follows the values as they come in, by the server's rules (a value that is not good is said
        # so on a label); nothing is sent: other clients and the file are as before.
        d = await Device(server.url, "demo:watcher", 2, "watcher").open()
        try:
            temperature(server, 74.4)
            await page.wait(f"{output('74 deg')} && {preview_label('74 deg')}", what="the preview following a new value")
            temperature(server, 71, quality="uncertain")
            await d.wait(lambda: label(d, TEMP) == "71 °C (uncertain)", what="the server's label of an uncertain value")
            await page.wait(f"{output('71 deg (uncertain)')} && {preview_label('71 deg (uncertain)')}", what="the preview of an uncertain value")
            temperature(server, 71)
            await page.wait(f"{output('71 deg')} && {preview_label('71 deg')}", what="the preview following back")
            await d.wait(lambda: label(d, TEMP) == "71 °C", what="the server's own label")
            assert json.loads((dst / "bindings.json").read_text()) == before
            k0 = keyframes(d)

            await page.click("#author-save")
            await page.wait("sceneStream.authoring().lastSave && !sceneStream.authoring().saving", what="the server's answer")
            save = await page.eval("sceneStream.authoring().lastSave")
            assert save["status"] == 200 and json.loads(save["text"])["applied"] is True, save
            assert "Saved" in await page.eval("document.getElementById('author-result').textContent")

            # The file: the press label binding replaced in place, every other binding as it was.
            after = json.loads((dst / "bindings.json").read_text())
            want = {"twins": "*/*/press-*", "property": "temperature", "node": "{twin}/temp", "field": "label",
                    "map": {"kind": "format", "format": "{value} deg", "precision": 0}}
            assert after["format"] == before["format"]
            assert [x for x in after["bindings"] if x != want] == [x for x in before["bindings"] if not (x["node"] == "{twin}/temp" and x["field"] == "label")]
            assert after["bindings"].index(want) == 10

            # Every client gets the new label as an ordinary delta.
            await d.wait(lambda: label(d, TEMP) == "71 deg", what="the saved binding applied for the other client")
            assert keyframes(d) == k0, d.order[-20:]
            # The page: the preview gave way to the stream's value, which says the same.
            await page.wait("sceneStream.authoring().previewNode === null && !sceneStream.authoring().previewing", what="the preview gone")
            await page.wait(f"sceneStream.plant.overrides.size === 0 && sceneStream.plant.nodes.get(sceneStream.plant.indexOf({json.dumps(TEMP)})).label === '71 deg'",
                            what="the stream's label on the node")
            assert "{value} deg" in await page.eval("document.getElementById('author-bound').textContent")
        finally:
            await d.close()
    browse(test)


def test_an_invalid_edit_shows_the_servers_reason_and_cancel_takes_the_preview_away(authoring):
    server, dst = authoring
    temperature(server, 71)
    before = (dst / "bindings.json").read_bytes()

    async def test(b):
        page = await b.open(f"http://127.0.0.1:{server.port}/?user=editor")
        await drawn(page)
        await page.wait("sceneStream.authoring().allowed === true", what="authoring allowed")
        await open_editor(page)
        await choose(page, "#author-node", LIGHT)
        # The light's colour from the temperature: the default stops (0, 50, 100), blended, shown on the light.
        await choose(page, "#author-property", "temperature")
        await choose(page, "#author-field", "color")
        await choose(page, "#author-kind", "rangeColor")
        want = blend(0xf2c94cff, 0xeb3b2fff, (71 - 50) / 50)
        await page.wait(output(f"#{want:08x}"), what="the colour preview in the form")
        await page.wait(f"{colour_of(LIGHT)} === {want}", what="the colour preview on the light")

        # No stops at all: the server refuses, and says why — shown as it said it; nothing is written.
        while await page.eval("document.querySelector('#author-params [data-remove]') !== null"):
            await page.eval("document.querySelector('#author-params [data-remove]').click()")
        await page.wait("sceneStream.authoring().output.invalid", what="the preview says the edit is not valid")
        await page.click("#author-save")
        await page.wait("sceneStream.authoring().lastSave && !sceneStream.authoring().saving", what="the server's answer")
        save = await page.eval("sceneStream.authoring().lastSave")
        assert save["status"] == 400, save
        assert "bindings.json" in save["text"] and "needs at least one stop" in save["text"] and "nothing was written" in save["text"], save
        assert await page.eval("document.querySelector('#author-result pre').textContent") == save["text"].strip()
        assert "400" in await page.eval("document.getElementById('author-result').textContent")
        assert (dst / "bindings.json").read_bytes() == before

        # One stop again: previewed; cancel: the light shows the stream's colour again, the section closes.
        await page.click("#author-add-stop")
        await page.wait(f"{colour_of(LIGHT)} === 0x3a7bd5ff", what="a one-stop preview on the light")
        await page.click("#author-cancel")
        await page.wait("sceneStream.authoring().previewNode === null && !sceneStream.authoring().open", what="cancelled")
        stream = (await page.eval("sceneStream.sceneDigest()"))[LIGHT][2]
        assert stream == 0x22cc44ff and await page.eval(colour_of(LIGHT)) == stream
        assert (dst / "bindings.json").read_bytes() == before
    browse(test)


def test_only_admins_see_the_binding_editor_and_their_token_saves(tmp_path):
    dst = copy_plant(tmp_path)
    server = start(tmp_path, dst, auth={"hs256Secret": SECRET}, **STILL)
    try:
        temperature(server, 71)

        async def test(b):
            for user, role in (("olga", "operator"), ("ada", "admin")):
                admin = role == "admin"
                page = await b.open(f"http://127.0.0.1:{server.port}/?token={jwt(user, role=role)}")
                await drawn(page)
                await page.wait(f"sceneStream.authoring().allowed === {json.dumps(admin)}", what=f"the {role}'s right to author known")
                assert await page.eval(f"sceneStream.select({json.dumps(PRESS)})") == PRESS
                await page.wait("sceneStream.inspect && sceneStream.inspect.properties.temperature", what="the inspect panel filled")
                shown = await page.eval("(() => { const a = document.getElementById('author'); return !a.hidden && a.getBoundingClientRect().height > 0; })()")
                assert shown == admin, role
                if not admin:
                    continue
                # The admin's edit goes out with the page's bearer token.
                await page.eval("document.querySelector('#author summary').click()")
                await page.wait("sceneStream.authoring().open && sceneStream.authoring().file", what="the editor open")
                await choose(page, "#author-node", TEMP)
                await fill(page, "#author-format", "{value} K")
                await page.wait(output("71 K"), what="the admin's preview")
                await page.click("#author-save")
                await page.wait("sceneStream.authoring().lastSave && !sceneStream.authoring().saving", what="the server's answer")
                assert (await page.eval("sceneStream.authoring().lastSave"))["status"] == 200
                assert any(x["node"] == "{twin}/temp" and x["map"].get("format") == "{value} K"
                           for x in json.loads((dst / "bindings.json").read_text())["bindings"])
        browse(test)
    finally:
        assert server.stop() == 0
