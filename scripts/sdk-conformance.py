#!/usr/bin/env python3
"""The fake DingTalk is faithful: DingTalk's official Python SDKs accept it.

Starts the stand-alone fake (`examples/fake_dingtalk`), points the official
`alibabacloud-dingtalk` SDK's oauth2_1_0, robot_1_0 and im_1_0 clients at it
(HTTP endpoint override) and calls token, send, query (every page), direct
messages (batchSend), recall and both member lists, checking that the SDK's own models parse every answer and carry
the expected values, errors included. Then parses the fake's callback body
with the official Stream SDK's `ChatbotMessage.from_dict` (`dingtalk-stream`)
and answers it through that SDK's own session-webhook reply.

    python3 scripts/sdk-conformance.py --fake target/debug/examples/fake_dingtalk

Prints `SDK conformance: N checks ..., failures: 0` and exits 0, or lists the
failures and exits 1. Exit 2: the SDKs are not installed.
"""

import argparse
import json
import logging
import subprocess
import sys

try:
    from alibabacloud_dingtalk.im_1_0 import client as im_client
    from alibabacloud_dingtalk.im_1_0 import models as im_models
    from alibabacloud_dingtalk.oauth2_1_0 import client as oauth_client
    from alibabacloud_dingtalk.oauth2_1_0 import models as oauth_models
    from alibabacloud_dingtalk.robot_1_0 import client as robot_client
    from alibabacloud_dingtalk.robot_1_0 import models as robot_models
    from alibabacloud_tea_openapi import models as open_api_models
    from alibabacloud_tea_util import models as util_models
    from Tea.exceptions import TeaException
    import dingtalk_stream
    from dingtalk_stream import ChatbotMessage
except ImportError as e:  # pragma: no cover
    print(f"SDK conformance: skipped, SDKs not installed ({e})")
    sys.exit(2)


class Checks:
    def __init__(self):
        self.passed = 0
        self.failures = []

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failures.append(f"{name}: {detail}")

    def raises(self, name, fn, code, status=None):
        try:
            fn()
        except TeaException as e:
            got_status = getattr(e, "statusCode", None)
            ok = e.code == code and (status is None or got_status == status)
            self.check(name, ok, f"got code={e.code!r} status={got_status!r}, want {code!r} {status!r}")
            return
        except Exception as e:  # noqa: BLE001
            self.check(name, False, f"raised {type(e).__name__}: {e}")
            return
        self.check(name, False, f"no error, want {code!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fake", required=True, help="path of the fake_dingtalk example binary")
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)  # the Stream SDK logs failed replies itself

    fake = subprocess.Popen([args.fake, "--members", "450"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(fake.stdout.readline())
        c = Checks()
        run(c, info)
    finally:
        fake.stdin.close()
        try:
            fake.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fake.kill()
    versions = f"alibabacloud-dingtalk {pkg_version('alibabacloud-dingtalk')}, dingtalk-stream {pkg_version('dingtalk-stream')}"
    print(f"SDK conformance: {c.passed + len(c.failures)} checks against {versions}, failures: {len(c.failures)}")
    for f in c.failures:
        print(f"  FAILED {f}")
    sys.exit(1 if c.failures else 0)


def pkg_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001
        return "?"


def run(c, info):
    host = info["baseUrl"].removeprefix("http://")
    config = open_api_models.Config(protocol="http", endpoint=host)
    runtime = util_models.RuntimeOptions()
    oauth = oauth_client.Client(config)
    robot = robot_client.Client(config)
    im = im_client.Client(config)
    group, robot_code = info["group"], info["robotCode"]

    # oauth2: token, same token while valid, wrong secret.
    r = oauth.get_access_token(oauth_models.GetAccessTokenRequest(app_key=info["appKey"], app_secret=info["appSecret"]))
    token = r.body.access_token
    c.check("token: accessToken parsed", isinstance(token, str) and token, repr(token))
    c.check("token: expireIn parsed as int 7200", r.body.expire_in == 7200, repr(r.body.expire_in))
    r2 = oauth.get_access_token(oauth_models.GetAccessTokenRequest(app_key=info["appKey"], app_secret=info["appSecret"]))
    c.check("token: same token while valid", r2.body.access_token == token, r2.body.access_token)
    c.raises("token: wrong secret", lambda: oauth.get_access_token(
        oauth_models.GetAccessTokenRequest(app_key=info["appKey"], app_secret="wrong")), "invalidClientIdOrSecret", 400)

    def send_headers(t=token):
        return robot_models.OrgGroupSendHeaders(x_acs_dingtalk_access_token=t)

    # robot: send.
    req = robot_models.OrgGroupSendRequest(
        msg_key="sampleMarkdown", msg_param=json.dumps({"title": "SDK", "text": "### SDK\nhello"}),
        open_conversation_id=group, robot_code=robot_code)
    r = robot.org_group_send_with_options(req, send_headers(), runtime)
    key = r.body.process_query_key
    c.check("send: processQueryKey parsed", isinstance(key, str) and len(key) > 20, repr(key))
    c.check("send: request id header", "x-acs-request-id" in {k.lower() for k in (r.headers or {})}, r.headers)
    bad = robot_models.OrgGroupSendRequest(msg_key="sampleMarkdown", msg_param=json.dumps({"title": "t", "text": "x"}),
                                           open_conversation_id="cidUnknown==", robot_code=robot_code)
    c.raises("send: unknown group", lambda: robot.org_group_send_with_options(bad, send_headers(), runtime),
             "invalid.openConversationId", 400)
    c.raises("send: bad token", lambda: robot.org_group_send_with_options(req, send_headers("nope"), runtime),
             "InvalidAuthentication", 400)

    # robot: direct messages (oToMessages/batchSend): ≤20 userIds, unknown users in invalidStaffIdList.
    def oto_headers(t=token):
        return robot_models.BatchSendOTOHeaders(x_acs_dingtalk_access_token=t)

    oto = robot_models.BatchSendOTORequest(
        robot_code=robot_code, user_ids=["user0001", "user0002", "nobody"], msg_key="sampleMarkdown",
        msg_param=json.dumps({"title": "Reminder", "text": "Please read the notice."}))
    r = robot.batch_send_otowith_options(oto, oto_headers(), runtime)
    b = r.body
    c.check("batchSend: processQueryKey parsed", isinstance(b.process_query_key, str) and b.process_query_key,
            repr(b.process_query_key))
    c.check("batchSend: invalidStaffIdList", b.invalid_staff_id_list == ["nobody"], repr(b.invalid_staff_id_list))
    c.check("batchSend: flowControlledStaffIdList a list", b.flow_controlled_staff_id_list == [],
            repr(b.flow_controlled_staff_id_list))
    too_many = robot_models.BatchSendOTORequest(
        robot_code=robot_code, user_ids=[f"user{i:04}" for i in range(1, 22)], msg_key="sampleText",
        msg_param=json.dumps({"content": "x"}))
    c.raises("batchSend: more than 20 userIds", lambda: robot.batch_send_otowith_options(
        too_many, oto_headers(), runtime), "invalidParameter.userIds.overMax", 400)

    # robot: recall (groupMessages/recall): successResult and failedResult, ≤20 keys.
    def recall_headers(t=token):
        return robot_models.OrgGroupRecallHeaders(x_acs_dingtalk_access_token=t)

    rc = robot_models.OrgGroupRecallRequest(open_conversation_id=group, robot_code=robot_code,
                                            process_query_keys=[key, "unknownKey"])
    r = robot.org_group_recall_with_options(rc, recall_headers(), runtime)
    b = r.body
    c.check("recall: successResult", b.success_result == [key], repr(b.success_result))
    c.check("recall: failedResult reason", isinstance((b.failed_result or {}).get("unknownKey"), str),
            repr(b.failed_result))
    rc = robot_models.OrgGroupRecallRequest(open_conversation_id=group, robot_code=robot_code,
                                            process_query_keys=[f"k{i}" for i in range(21)])
    c.raises("recall: more than 20 keys", lambda: robot.org_group_recall_with_options(
        rc, recall_headers(), runtime), "invalidParameter.processQueryKeys.overMax", 400)

    # robot: query every page of the seeded notice.
    readers, next_token, pages = [], None, 0
    while True:
        q = robot_models.OrgGroupQueryRequest(process_query_key=info["processQueryKey"], open_conversation_id=group,
                                              robot_code=robot_code, max_results=200, next_token=next_token)
        r = robot.org_group_query_with_options(q, robot_models.OrgGroupQueryHeaders(x_acs_dingtalk_access_token=token), runtime)
        pages += 1
        b = r.body
        c.check(f"query page {pages}: sendStatus", b.send_status == "SUCCESS", repr(b.send_status))
        c.check(f"query page {pages}: readUserIds a list of str",
                isinstance(b.read_user_ids, list) and all(isinstance(u, str) for u in b.read_user_ids), repr(b.read_user_ids)[:80])
        c.check(f"query page {pages}: hasMore a bool", isinstance(b.has_more, bool), repr(b.has_more))
        readers += b.read_user_ids
        if not b.has_more:
            break
        c.check(f"query page {pages}: nextToken a str", isinstance(b.next_token, str) and b.next_token, repr(b.next_token))
        next_token = b.next_token
        if pages > 10:
            break
    c.check("query: every reader, in order, over pages", readers == info["readers"], f"{len(readers)} readers in {pages} pages")
    c.check("query: more than one page", pages >= 2, pages)
    q = robot_models.OrgGroupQueryRequest(process_query_key=info["processQueryKey"], open_conversation_id=group,
                                          robot_code=robot_code, max_results=200, next_token="forged")
    c.raises("query: invalid nextToken", lambda: robot.org_group_query_with_options(
        q, robot_models.OrgGroupQueryHeaders(x_acs_dingtalk_access_token=token), runtime), "invalidParameter.cursor.invalid", 400)

    # im: inner-group member list (integer cursor), every page.
    members, names, cursor, pages = [], {}, 0, 0
    while True:
        q = im_models.QueryInnerGroupMemberListRequest(open_conversation_id=group, user_id="user0001",
                                                       max_results=100, next_token=cursor)
        r = im.query_inner_group_member_list_with_options(
            q, im_models.QueryInnerGroupMemberListHeaders(x_acs_dingtalk_access_token=token), runtime)
        pages += 1
        b = r.body
        c.check(f"inner members page {pages}: success", b.success is True, repr(b.success))
        for m in b.list or []:
            members.append(m.user_id)
            names[m.user_id] = m.name
        if not b.has_more:
            break
        c.check(f"inner members page {pages}: nextToken an int", isinstance(b.next_token, int), repr(b.next_token))
        cursor = b.next_token
        if pages > 20:
            break
    c.check("inner members: the whole group", members == info["members"], f"{len(members)} members in {pages} pages")
    c.check("inner members: names parsed", names.get("user0001") == "Member 0001", repr(names.get("user0001")))

    # im: scene-group member list.
    q = im_models.BatchQueryGroupMemberRequest(open_conversation_id=info["sceneGroup"], max_results=1000)
    r = im.batch_query_group_member_with_options(
        q, im_models.BatchQueryGroupMemberHeaders(x_acs_dingtalk_access_token=token), runtime)
    b = r.body
    c.check("scene members: memberUserIds", b.member_user_ids == info["members"], f"{len(b.member_user_ids or [])}")
    c.check("scene members: staffIdNickMap", (b.staff_id_nick_map or {}).get("user0002") == "Member 0002",
            repr(b.staff_id_nick_map)[:80])
    c.check("scene members: hasMore false", b.has_more is False, repr(b.has_more))
    q = im_models.BatchQueryGroupMemberRequest(open_conversation_id=group, max_results=1000)
    c.raises("scene members: not a scene group", lambda: im.batch_query_group_member_with_options(
        q, im_models.BatchQueryGroupMemberHeaders(x_acs_dingtalk_access_token=token), runtime), "groupPermissionDenied", 400)

    # Stream SDK: the fake's callback body through the official message model.
    body = info["mentionBody"]
    m = ChatbotMessage.from_dict(body)
    c.check("callback: msgId", m.message_id == body["msgId"], m.message_id)
    c.check("callback: msgtype", m.message_type == "text", m.message_type)
    c.check("callback: text.content", m.text is not None and m.text.content == " who read my last notice?",
            m.text and m.text.content)
    c.check("callback: conversation", m.conversation_id == group and m.conversation_type == "2",
            f"{m.conversation_id} {m.conversation_type}")
    c.check("callback: sender", m.sender_staff_id == "user0001" and m.sender_nick == "Member 0001",
            f"{m.sender_staff_id} {m.sender_nick}")
    c.check("callback: robot", m.robot_code == robot_code and m.chatbot_user_id, f"{m.robot_code} {m.chatbot_user_id}")
    c.check("callback: createAt a number", isinstance(m.create_at, int), repr(m.create_at))
    c.check("callback: session webhook and expiry", m.session_webhook.startswith(info["baseUrl"])
            and isinstance(m.session_webhook_expired_time, int), f"{m.session_webhook} {m.session_webhook_expired_time}")
    c.check("callback: atUsers", len(m.at_users) == 1 and m.at_users[0].dingtalk_id == m.chatbot_user_id,
            repr([u.to_dict() for u in m.at_users]))
    c.check("callback: isInAtList", m.is_in_at_list is True, repr(m.is_in_at_list))
    # senderPlatform is in the documented sample; the SDK keeps `text` in
    # extensions too (it reads it from there for msgtype "text").
    known_extra = {"senderPlatform", "text"}
    c.check("callback: no field unknown to the SDK", set(m.extensions) <= known_extra, repr(m.extensions))
    c.check("callback: round trip", ChatbotMessage.from_dict(m.to_dict()).to_dict() == m.to_dict(), "to_dict/from_dict")
    # The SDK's own session-webhook replies.
    handler = dingtalk_stream.ChatbotHandler()
    answer = handler.reply_markdown("SDK reply", "### hello from the official SDK", m)
    c.check("session reply (markdown) accepted", answer == {"errcode": 0, "errmsg": "ok"}, repr(answer))
    answer = handler.reply_text("plain hello", m)
    c.check("session reply (text) accepted", answer == {"errcode": 0, "errmsg": "ok"}, repr(answer))
    expired = ChatbotMessage.from_dict(dict(body, sessionWebhook=body["sessionWebhook"].split("session=")[0] + "session=unknown"))
    import requests
    r = requests.post(expired.session_webhook, json={"msgtype": "text", "text": {"content": "x"}}, timeout=10)
    c.check("session reply: unknown session is errcode 300001", r.json().get("errcode") == 300001, r.text)


if __name__ == "__main__":
    main()
