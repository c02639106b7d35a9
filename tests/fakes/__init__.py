"""Stateful stand-ins of Twenty, Mautic, Slack, Stripe and Windmill's API.

Create a fake, then call `fake.mount(router)` inside `with respx.mock(...) as router:`.
"""

from tests.fakes.faults import FakeService, Fault, FaultQueue
from tests.fakes.mautic import FakeMautic
from tests.fakes.slack import FakeSlackApi, FakeSlackWebhook
from tests.fakes.stripe import FakeStripe
from tests.fakes.twenty import FakeTwenty
from tests.fakes.windmill import FakeWindmill

__all__ = [
    "FakeMautic",
    "FakeService",
    "FakeSlackApi",
    "FakeSlackWebhook",
    "FakeStripe",
    "FakeTwenty",
    "FakeWindmill",
    "Fault",
    "FaultQueue",
]
