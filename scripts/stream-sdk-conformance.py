#!/usr/bin/env python3
"""DingTalk's official Python Stream SDK (`dingtalk-stream` on PyPI) as a client
of readbot's fake Stream gateway.

The Rust driver (`tests/api/stream.rs`, test `official_python_sdk_conformance`,
run by `scripts/stream-sdk-conformance.sh`) starts the fake, runs this script,
pushes frames and checks the acks; this script only connects the unmodified SDK
and reports, one JSON object per stdout line, what the SDK's handlers received:

    {"kind": "bot", ...}     a bot message, as the SDK's ChatbotMessage parsed it
    {"kind": "event", ...}   an event, as the SDK's EventMessage parsed it (for a
                             robot_msg_read, "read" holds its fields)

Two things are overridden, as the stack notes describe: the open-connection URL
(DingTalkStreamClient.OPEN_CONNECTION_API) and get_host_ip (which would open a
UDP socket towards a public address to learn the local IP).
"""

import argparse
import asyncio
import json
import logging
import sys

import dingtalk_stream
from dingtalk_stream import AckMessage
from dingtalk_stream.version import VERSION_STRING


def emit(obj):
    print(json.dumps(obj, ensure_ascii=False), flush=True)


class BotHandler(dingtalk_stream.ChatbotHandler):
    async def process(self, callback):
        msg = dingtalk_stream.ChatbotMessage.from_dict(callback.data)
        emit({
            "kind": "bot",
            "messageId": callback.headers.message_id,
            "topic": callback.headers.topic,
            "msgId": msg.message_id,
            "text": msg.text.content if msg.text else None,
            "conversationId": msg.conversation_id,
            "senderStaffId": msg.sender_staff_id,
            "sessionWebhook": msg.session_webhook,
        })
        return AckMessage.STATUS_OK, "OK"


class EventHandler(dingtalk_stream.EventHandler):
    async def process(self, event):
        line = {
            "kind": "event",
            "messageId": event.headers.message_id,
            "eventType": event.headers.event_type,
            "eventId": event.headers.event_id,
            "data": event.data,
        }
        if event.headers.event_type == "robot_msg_read":
            # The read event's fields as the SDK hands them to an app
            # (`data` arrives as a JSON string and the SDK parses it).
            data = event.data if isinstance(event.data, dict) else json.loads(event.data)
            line["read"] = {k: data.get(k) for k in (
                "processQueryKey", "userId", "unionId", "operatTime", "robotCode",
                "openConversationId")}
        emit(line)
        return AckMessage.STATUS_OK, "OK"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--open-url", required=True,
                   help="the fake's http://127.0.0.1:PORT/v1.0/gateway/connections/open")
    p.add_argument("--client-id", required=True)
    p.add_argument("--client-secret", required=True)
    p.add_argument("--timeout", type=float, default=120.0,
                   help="exit (code 3) after this many seconds")
    args = p.parse_args()

    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    dingtalk_stream.DingTalkStreamClient.OPEN_CONNECTION_API = args.open_url
    dingtalk_stream.DingTalkStreamClient.get_host_ip = lambda self: "127.0.0.1"

    client = dingtalk_stream.DingTalkStreamClient(
        dingtalk_stream.Credential(args.client_id, args.client_secret))
    client.register_all_event_handler(EventHandler())
    client.register_callback_handler(dingtalk_stream.ChatbotMessage.TOPIC, BotHandler())
    emit({"kind": "started", "sdk": VERSION_STRING})
    try:
        asyncio.run(asyncio.wait_for(client.start(), timeout=args.timeout))
    except asyncio.TimeoutError:
        print("stream-sdk-conformance.py: timed out", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main()
