"""The emulator served over HTTP: a router to mount in another app, or an app of its own.

Under the prefix (``/sandbox/aws`` by default):

* ``POST`` (the prefix itself, or with a trailing ``/``): the AWS JSON 1.1 services;
  boto3 takes ``endpoint_url=<base>/sandbox/aws``, any region, any credentials;
* ``GET /sns/cert.pem``: the certificate notifications are signed under;
* ``GET /sns/unsubscribe``: the envelopes' UnsubscribeURL (answers, changes nothing);
* ``/control/...``: :mod:`accrual.sandbox.aws.control`;
* ``GET /marketplace/{product_code}``: the buyer's side for a person with a browser, a
  listing page whose *Subscribe* button subscribes a new buyer and then has the
  browser POST ``x-amzn-marketplace-token`` to the product's fulfillment URL, as AWS's
  *Set up your account* does.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from accrual.sandbox.aws import sns
from accrual.sandbox.aws.control import control_router
from accrual.sandbox.aws.emulator import AwsSandbox, ControlError
from accrual.sandbox.aws.protocol import MAX_BODY_BYTES, AwsError, handle
from accrual.sandbox.serving import lower_headers, read_bounded, standalone_app


def aws_router(sandbox: AwsSandbox) -> APIRouter:
    """Every route of the emulator under ``sandbox.prefix``."""
    router = APIRouter(prefix=sandbox.prefix, tags=["sandbox"])

    async def service(request: Request) -> Response:
        headers = lower_headers(request)
        body = await read_bounded(request, MAX_BODY_BYTES)
        if body is None:
            def too_large(*_args: object) -> dict[str, object]:
                raise AwsError("ValidationException", "Request is too large")
            status, content, out = handle({headers.get("x-amz-target", ""): too_large},
                                          headers, b"{}")
        else:
            status, content, out = await run_in_threadpool(sandbox.handle, headers, body)
        return Response(content, status_code=status, headers=out)

    for path in ("", "/"):
        router.add_api_route(path, service, methods=["POST"],
                             summary="AWS Marketplace metering and entitlement services")

    @router.get(sns.CERT_PATH)
    def cert() -> Response:
        """The certificate the emulator's SNS notifications are signed under."""
        return Response(sandbox.signer.cert_pem(), media_type="application/x-pem-file")

    @router.get(sns.UNSUBSCRIBE_PATH)
    def unsubscribe_url() -> Response:
        """The envelopes' UnsubscribeURL: acknowledged, nothing changes."""
        return Response("<UnsubscribeResponse/>", media_type="text/xml")

    @router.get("/marketplace/{product_code}", response_class=HTMLResponse)
    def listing(product_code: str) -> HTMLResponse:
        """The product's listing page: a buyer subscribes from here."""
        product = sandbox.state.products.get(product_code)
        if product is None:
            return _page(404, "No such product", f"The sandbox has no product "
                         f"{escape(product_code)}.")
        action = f"{sandbox.prefix}/marketplace/{escape(product.code)}/subscribe"
        return _page(200, f"{escape(product.code)} on AWS Marketplace (sandbox)",
                     "<p>Pay-as-you-go SaaS, billed through your AWS account.</p>"
                     f'<form method="post" action="{action}">'
                     '<button type="submit">Subscribe</button></form>')

    @router.post("/marketplace/{product_code}/subscribe", response_class=HTMLResponse)
    def subscribe(product_code: str) -> HTMLResponse:
        """A new buyer subscribes; the browser is sent on to the seller with its token."""
        try:
            bought = sandbox.subscribe(product_code)
        except ControlError as error:
            return _page(error.status, "Cannot subscribe", escape(str(error)))
        product = sandbox.state.products[product_code]
        if not product.fulfillment_url:
            return _page(409, "No fulfillment URL", "The product has no fulfillment URL.")
        return _page(200, "Set up your account",
                     f"<p>AWS account {escape(bought['customer_aws_account_id'])} subscribed. "
                     "Taking you to the seller&hellip;</p>"
                     f'<form id="setup" method="post" action="{escape(product.fulfillment_url)}">'
                     '<input type="hidden" name="x-amzn-marketplace-token" '
                     f'value="{escape(bought["registration_token"])}">'
                     '<button type="submit">Set up your account</button></form>'
                     "<script>document.getElementById('setup').submit()</script>")

    router.include_router(control_router(sandbox))
    return router


def _page(status: int, title: str, body: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                        f"<title>{title}</title></head><body><h1>{title}</h1>{body}"
                        "</body></html>", status_code=status)


def create_app(sandbox: AwsSandbox) -> FastAPI:
    """The emulator alone (``accrual sandbox aws``)."""
    return standalone_app("Accrual AWS Marketplace sandbox",
                          "A faithful local AWS Marketplace: metering, entitlements, SNS "
                          f"notifications. boto3 endpoint: `{sandbox.endpoint_url}`.",
                          aws_router(sandbox), aws_sandbox=sandbox)
