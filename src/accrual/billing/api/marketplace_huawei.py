"""Huawei Cloud KooGallery's V2 activities (`/billing/v1/marketplaces/huawei/activities`).
What each activity does is described in ``accrual.billing.services.huawei_activities``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from accrual.billing.api.deps import CenterDep, billing_router
from accrual.billing.marketplaces.huawei import ACTIVITIES
from accrual.infra.http import error_responses

router = billing_router()

TAG = "billing: marketplaces"
ActivityPath = Annotated[str, Path(min_length=1, max_length=32, examples=["newInstance"],
                                   description="The activity, when KooGallery names it in "
                                               "the URL; else the body's `activity`")]
SIGNATURE_QUERY = {
    "signature": "hex(HMAC-SHA256(key, accessKey + nonce + timestamp + "
                 "hex(HMAC-SHA256(key, body)))), either case",
    "timestamp": "Unix milliseconds; more than 60 s from now is refused",
    "nonce": "random; a nonce seen before is refused (a replay)"}
NEW_INSTANCE = {
    "activity": "newInstance", "orderId": "CS2611261030000001",
    "orderLineId": "CS2611261030000001-000001", "businessId": "61d2c0b7e4a94f3c",
    "testFlag": "0",
    "buyerInfo": {"customerId": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "customerName": "buyer",
                  "userId": "5f6e7d8c9b0a1f2e", "userName": "buyer"},
    "orderInfo": [{"businessId": "61d2c0b7e4a94f3c", "orderId": "CS2611261030000001",
                   "trialFlag": "0", "orderAmount": "0.00", "chargingMode": "ON_DEMAND",
                   "provisionType": 1,
                   "productInfo": [{"skuCode": "accrual-usage",
                                    "productId": "OFFI-accrual-saas", "linearValue": 1}],
                   "createTime": "20261126023000", "expireTime": "20261226023000",
                   "extendParams": []}]}
ANSWER_EXAMPLES: dict[str, Any] = {
    "newInstance": {"summary": "An instance opened", "value": {
        "resultCode": "000000", "resultMsg": "success",
        "instanceId": "hw5d41402abc4b2a76b9719d911017c5",
        "appInfo": {"frontEndUrl": "https://billing.example.com/billing/v1/marketplaces/"
                                   "activations/act_9b1f0c2d3e4a5b6c7d8e9f0a1b2c3d4e",
                    "memo": "Accrual cloud account active; activation open"}}},
    "queryInstance": {"summary": "The instances asked about", "value": {
        "resultCode": "000000", "resultMsg": "success",
        "info": [{"instanceId": "hw5d41402abc4b2a76b9719d911017c5", "appInfo": {
            "frontEndUrl": "https://billing.example.com/billing/v1/marketplaces/activations/"
                           "act_9b1f0c2d3e4a5b6c7d8e9f0a1b2c3d4e",
            "memo": "Accrual cloud account active; activation completed"}}]}},
    "applied": {"summary": "Renewal, upgrade, freeze, unfreeze or release taken (or a "
                           "retry of one taken before)",
                "value": {"resultCode": "000000", "resultMsg": "success"}},
    "refused": {"summary": "Forged, stale or replayed: nothing changed",
                "value": {"resultCode": "000001", "resultMsg": "this nonce was seen already"}},
    "invalid": {"summary": "Malformed", "value": {
        "resultCode": "000002", "resultMsg": "instanceId must be an id of 1 to 64 characters"}},
    "unknown": {"summary": "An instance unknown here", "value": {
        "resultCode": "000003", "resultMsg": "instance hw0000 is unknown"}},
    "failed": {"summary": "A failure of ours: KooGallery sends it again",
               "value": {"resultCode": "000005", "resultMsg": "try again later"}}}
OPENAPI: dict[str, Any] = {
    "parameters": [{"name": name, "in": "query", "required": True, "description": text,
                    "schema": {"type": "string", "maxLength": 128}}
                   for name, text in SIGNATURE_QUERY.items()],
    "requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object", "required": ["activity"], "properties": {
            "activity": {"type": "string", "enum": list(ACTIVITIES)}}},
        "examples": {
            "newInstance": {"value": NEW_INSTANCE},
            "queryInstance": {"value": {"activity": "queryInstance",
                                        "instanceId": "hw5d41402abc4b2a76b9719d911017c5",
                                        "testFlag": "0"}},
            "refreshInstance": {"value": {
                "activity": "refreshInstance", "scene": "RENEWAL",
                "orderId": "CS2611261030000001", "orderLineId": "CS2611261030000001-000001",
                "instanceId": "hw5d41402abc4b2a76b9719d911017c5",
                "productId": "OFFI-accrual-saas", "expireTime": "20270126023000",
                "testFlag": "0"}},
            "upgradeInstance": {"value": {
                "activity": "upgradeInstance", "instanceId": "hw5d41402abc4b2a76b9719d911017c5",
                "orderId": "CS2612011030000002", "orderLineId": "CS2612011030000002-000001",
                "testFlag": "0"}},
            "updateInstanceStatus": {"value": {
                "activity": "updateInstanceStatus",
                "instanceId": "hw5d41402abc4b2a76b9719d911017c5", "status": "FREEZE",
                "testFlag": "0"}},
            "releaseInstance": {"value": {
                "activity": "releaseInstance", "instanceId": "hw5d41402abc4b2a76b9719d911017c5",
                "orderId": "CS2611261030000001", "orderLineId": "CS2611261030000001-000001",
                "testFlag": "0"}}}}}},
    "responses": {"200": {
        "description": "KooGallery's answer: `resultCode` (000000 success, 000001 "
                       "authentication failed, 000002 invalid parameters, 000003 instance "
                       "not found, 000005 internal error), signed in the `Body-Sign` header",
        "headers": {"Body-Sign": {"description": 'sign_type="HMAC-SHA256", '
                                                 'signature="<base64 HMAC-SHA256 of the body>"',
                                  "schema": {"type": "string"}}},
        "content": {"application/json": {"schema": {"type": "object", "properties": {
            "resultCode": {"type": "string"}, "resultMsg": {"type": "string"},
            "instanceId": {"type": "string"}, "appInfo": {"type": "object"},
            "info": {"type": "array", "items": {"type": "object"}}}},
            "examples": ANSWER_EXAMPLES}}}}}
DESCRIPTION = """KooGallery calls this with each V2 activity of a product this center sells,
signed in the query (`signature`, `timestamp` in ms, `nonce`). The answer is always HTTP 200
with KooGallery's `resultCode` and a `Body-Sign` header (the KooGallery protocol: its
errors are result codes, not this API's error envelope).

* `newInstance`: the buyer's cloud account and an activation: `instanceId` (the same for
  every resend of the order) and `appInfo.frontEndUrl`, the activation page where the
  buyer registers (`activation_id`) or signs in and claims it.
* `queryInstance`: each instance's `appInfo` (the activation page, the state in `memo`).
* `refreshInstance` renews (a suspended instance comes back), `upgradeInstance` changes
  the plan, `updateInstanceStatus` FREEZE suspends it and locks its workspaces, UNFREEZE
  reinstates it and unlocks them, `releaseInstance` ends it: its workspaces are locked,
  the cloud link removed, and they settle by the billing center from the next day; the
  billing center as settlement method, another cloud account or a new subscription
  unlocks them. KooGallery's retry of an event is answered success and changes nothing.
* Forged, stale (over 60 s) or replayed (nonce seen before, by any process, also after a
  restart): `000001`, nothing changes; malformed `000002`; an unknown instance `000003`;
  a failure of ours `000005` (KooGallery retries).

404 `marketplace_not_configured` (the error envelope) when this center sells nothing on
KooGallery."""


async def _handle(request: Request, center: CenterDep) -> Response:
    body = await request.body()
    handled = await run_in_threadpool(
        center.huawei_activities.handle, request.method, request.url.path,
        dict(request.query_params), dict(request.headers), body,
        base_url=str(request.base_url))
    return Response(handled.response.body, status_code=200,
                    headers=dict(handled.response.headers))


@router.post("/marketplaces/huawei/activities", tags=[TAG], response_class=Response,
             responses=error_responses(404, 413), openapi_extra=OPENAPI,
             summary="KooGallery's V2 activities", description=DESCRIPTION)
async def activities(request: Request, center: CenterDep) -> Response:
    return await _handle(request, center)


@router.post("/marketplaces/huawei/activities/{activity}", tags=[TAG], response_class=Response,
             responses=error_responses(404, 413), openapi_extra=OPENAPI,
             summary="KooGallery's V2 activities, the activity named in the URL",
             description=DESCRIPTION)
async def named_activity(activity: ActivityPath, request: Request,
                         center: CenterDep) -> Response:
    del activity  # the adapter reads it from the path
    return await _handle(request, center)
