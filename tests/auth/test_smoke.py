from tests.factories import make_tenant


async def test_admin_signs_in_and_sees_itself(session, client):
    tenant = await make_tenant(session, client)
    response = await client.get("/api/v1/me", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["email"] == tenant.admin.email
    assert body["organization"]["id"] == str(tenant.org.id)
