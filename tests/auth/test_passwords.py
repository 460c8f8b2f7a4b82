"""The rules of a new password (api/auth/passwords.py): the rules themselves, then where a password is set over
HTTP (a user created with one, an invitation accepted) answering 422 with the field's pointer."""

import pytest
from sqlmodel import col, select

from api.auth.models import User
from api.auth.passwords import check_new_password, common_passwords
from api.core.errors import ValidationFailed
from tests.auth.test_login import attempt
from tests.auth.test_users import NEW_PASSWORD, accept, invite, post_user
from tests.factories import make_tenant

EMAIL, NAME = "marta.lopez@comerciallevante.es", "Marta López"

REFUSED = {
    # From the list, as typed: capitals, accents and digits or symbols around a listed word change nothing.
    "password123": "password_common",
    "P@ssw0rd!!": "password_common",
    "qwertyuiop": "password_common",
    "Contraseña2024!": "password_common",
    "TeQuiero1234": "password_common",
    "Bienvenido-2025": "password_common",
    "administrador": "password_common",
    "Garcia12345": "password_common",
    "te-amo-12345": "password_common",
    # Repeated or sequential.
    "aaaaaaaaaaaa": "password_pattern",
    "abababababab": "password_pattern",
    "1234567890abcdef": "password_pattern",
    "zyxwvu987654": "password_pattern",
    # The account's own words, or the product's, with a little added.
    "Marta.Lopez.2024": "password_personal",
    "lopezmarta!!": "password_personal",
    "MARTA-gato-2024": "password_personal",  # what is left, "gato", is common itself
    "ComercialLevante1": "password_personal",
    "Fieldbook2026!": "password_personal",
}
ACCEPTED = [
    "Naranjos-de-Alzira-26",  # common words, but not one of them alone
    "correct horse battery staple",
    "x9$Kq!7#pZ",
    "Marta-rema-en-la-Albufera",  # her name, and plenty of her own
    "bananas-en-pijama",  # "ana" would be a context word of Ana's, not of Marta's
]


@pytest.mark.parametrize(("password", "code"), REFUSED.items(), ids=REFUSED.keys())
def test_refused_passwords_say_why(password: str, code: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_new_password(password, email=EMAIL, name=NAME)
    assert refused.value.errors == [
        {"pointer": "#/password", "detail": refused.value.errors[0]["detail"], "code": code}
    ]


@pytest.mark.parametrize("password", ACCEPTED)
def test_good_passwords_pass(password: str) -> None:
    check_new_password(password, email=EMAIL, name=NAME)


def test_the_list_holds_common_passwords_in_english_and_spanish() -> None:
    listed = common_passwords()
    assert len(listed) > 80_000
    assert {"123456", "password", "iloveyou", "contrasena", "tequiero", "usuario", "bienvenido"} <= listed


def _refused_password(response, code: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/validation"
    assert [(e["pointer"], e["code"]) for e in problem["errors"]] == [("#/password", code)]


async def test_a_user_created_with_a_weak_password_is_refused_and_not_created(session, client):
    tenant = await make_tenant(session, client)
    email = "javier.ruiz@example.com"
    common = await post_user(client, tenant.headers, email=email, password="Qwerty123456")
    _refused_password(common, "password_common")
    own = await post_user(client, tenant.headers, email=email, name="Javier Ruiz", password="JavierRuiz-1990")
    _refused_password(own, "password_personal")
    assert (await session.scalars(select(User).where(col(User.email) == email))).first() is None


async def test_an_invitation_accepted_with_a_weak_password_stays_open(session, client):
    _, invited = await invite(session, client)
    _refused_password(await accept(client, invited["invite_token"], "contraseña123"), "password_common")
    assert (await attempt(client, invited["email"], "contraseña123")).status_code == 401
    accepted = await accept(client, invited["invite_token"], NEW_PASSWORD)
    assert accepted.status_code == 200, accepted.text
