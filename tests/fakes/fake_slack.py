#!/usr/bin/env python3
"""fake_slack.py: a Slack incoming webhook that checks what it is sent.

Every POST is recorded and checked against the incoming-webhook message
format (https://api.slack.com/messaging/webhooks,
https://api.slack.com/reference/surfaces/formatting): a JSON object with a
non-empty `text` of at most 40,000 characters, optional channel / username /
icon_emoji / icon_url of the right shapes, no other keys kcwatch does not
send, and &, < and > escaped except in Slack's own <...> link syntax.
Problems land in `violations` and the request is answered as Slack answers
a bad message: 400 `invalid_payload`. A good one gets 200 `ok`. Failures
can be scripted like the webhook sink's (`fail_next(1, 429, retry_after=2)`,
`fail_next(1, 500)`, `fail_next(1, 400)`), answered with Slack's bodies.

    with FakeSlack() as slack:
        url = slack.url + "/services/T000/B000/XXXX"
        ...
        slack.texts()
"""

import re

from webhook_sink import WebhookSink  # noqa: E402

KEYS = ("text", "channel", "username", "icon_emoji", "icon_url")
TEXT_MAX = 40000
SLACK_BODIES = {400: b"invalid_payload", 403: b"invalid_token", 404: b"no_service",
                410: b"channel_is_archived", 429: b"rate_limited", 500: b"rollup_error"}
# Slack's own markup in angle brackets: links, mentions, channel references.
ANGLE = re.compile(r"<(https?://[^<>|]+(\|[^<>]*)?|mailto:[^<>]+|[@#!][^<>]*)>")
AMP = re.compile(r"&(?!amp;|lt;|gt;)")


def validate_message(p):
    """List of problems with an incoming-webhook message (empty: valid)."""
    if not isinstance(p, dict):
        return ["message is not a JSON object"]
    errs = []
    for k in p:
        if k not in KEYS:
            errs.append("unexpected key %r" % k)
    text = p.get("text")
    if not isinstance(text, str) or not text.strip():
        errs.append("text must be a non-empty string")
    else:
        if len(text) > TEXT_MAX:
            errs.append("text has %d characters, Slack cuts at %d" % (len(text), TEXT_MAX))
        bare = ANGLE.sub("", text)
        if "<" in bare or ">" in bare:
            errs.append("unescaped < or > outside Slack's link syntax")
        if AMP.search(text):
            errs.append("unescaped & in text")
    ch = p.get("channel")
    if ch is not None and not (isinstance(ch, str) and re.fullmatch(r"[#@]?[\w.-]+", ch)):
        errs.append("channel %r is not a channel name or id" % (ch,))
    un = p.get("username")
    if un is not None and not (isinstance(un, str) and un.strip()):
        errs.append("username must be a non-empty string")
    ie = p.get("icon_emoji")
    if ie is not None and not (isinstance(ie, str) and re.fullmatch(r":[\w+-]+:", ie)):
        errs.append("icon_emoji %r is not :name:" % (ie,))
    iu = p.get("icon_url")
    if iu is not None and not (isinstance(iu, str) and re.match(r"https?://", iu)):
        errs.append("icon_url must be an http(s) URL")
    return errs


class FakeSlack(WebhookSink):
    def validate(self, payload):
        return validate_message(payload)

    def reply(self, rec, scripted):
        if scripted is not None:
            return scripted, SLACK_BODIES.get(scripted, b"error"), "text/plain"
        if rec.violations:
            return 400, SLACK_BODIES[400], "text/plain"
        return 200, b"ok", "text/plain"

    def texts(self, pred=None):
        """The text of every delivered message, in order."""
        return [r.payload["text"] for r in self.deliveries(pred)
                if isinstance(r.payload.get("text"), str)]

    def wait_text(self, needle, timeout=10.0):
        """The first delivered message whose text contains needle, or None."""
        hit = self.wait_for(lambda r: needle in str(r.payload.get("text")), timeout)
        return hit.payload["text"] if hit else None
