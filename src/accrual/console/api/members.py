"""A workspace's members and custom roles (`/console/v1`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from accrual.console.api.deps import AccountDep, ConsoleDep, console_router
from accrual.console.services.members import CustomRole, Member
from accrual.infra.http import Name, Text, error_responses

router = console_router()

RoleText = Literal["admin", "member", "custom", "owner"]


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"email": "grace@example.com", "role": "member"},
        {"email": "joan@example.com", "role": "custom", "custom_role_id": "<role id>"}]})

    email: Text = Field(max_length=320, description="A console account's email")
    role: RoleText = Field(description="admin, member or custom (owner is refused with "
                                       "`owner_not_assignable`)")
    custom_role_id: Text | None = Field(default=None, max_length=32,
                                        description="The custom role, exactly when role is "
                                                    "`custom`")


class RoleChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"role": "admin"}, {"role": "custom", "custom_role_id": "<role id>"}]})

    role: RoleText
    custom_role_id: Text | None = Field(default=None, max_length=32)


class CustomRoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "Finance", "permissions": ["billing"]}]})

    name: Name = Field(max_length=40)
    permissions: list[Text] = Field(max_length=8, description="Granted permissions: "
                                                              "`billing` (Plans & Billing)")


class MemberOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "account_id": "<account id>", "email": "grace@example.com", "role": "member",
        "role_name": "member", "custom_role_id": None, "pending_role": "admin",
        "pending_since": "2026-11-28T09:30:00+00:00", "added_at": "2026-11-28T09:30:00+00:00"}]})

    account_id: str
    email: str
    role: str
    role_name: str
    custom_role_id: str | None
    pending_role: str | None = Field(description="`admin` while a raise waits for the "
                                                 "billing center's approval")
    pending_since: str | None
    added_at: str | None


class CustomRoleOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "<role id>", "name": "Finance", "permissions": ["billing"], "members": 1,
        "created_at": "2026-11-28T09:30:00+00:00"}]})

    id: str
    name: str
    permissions: list[str]
    members: int
    created_at: str


@router.get("/workspaces/{workspace_id}/members", tags=["console: members"],
            responses=error_responses(401, 404))
def list_members(workspace_id: str, console: ConsoleDep,
                 account_id: AccountDep) -> dict[str, list[MemberOut]]:
    """Every member with its role, the owner first (any member may look)."""
    return {"members": [member_out(m) for m in console.members.members_of(account_id,
                                                                          workspace_id)]}


@router.post("/workspaces/{workspace_id}/members", status_code=201, response_model=MemberOut,
             tags=["console: members"], responses=error_responses(401, 403, 404, 409, 422))
def add_member(workspace_id: str, body: MemberIn, console: ConsoleDep,
               account_id: AccountDep) -> MemberOut:
    """Add a console account by email (owner and administrators). As administrator of a
    commercial workspace it joins as a member until the paying billing account approves.
    Errors: 403 `owner_or_admin_only`; 404 `account_not_found`, `unknown_role`;
    409 `already_member`, `member_limit`; 422 `owner_not_assignable`, `invalid_role`."""
    added = console.members.add(account_id, workspace_id, body.email, body.role,
                                body.custom_role_id)
    console.nudge_relay()  # a raise waiting for approval reaches the billing center now
    return member_out(added)


@router.put("/workspaces/{workspace_id}/members/{member_id}", response_model=MemberOut,
            tags=["console: members"], responses=error_responses(401, 403, 404, 422))
def change_member(workspace_id: str, member_id: str, body: RoleChangeIn, console: ConsoleDep,
                  account_id: AccountDep) -> MemberOut:
    """Give a member another role (owner and administrators). A raise to administrator of a
    commercial workspace waits for the billing center's approval: the answer keeps the old
    role and shows `pending_role`. Errors: 403 `owner_or_admin_only`, `owner_protected`;
    404 `member_not_found`, `unknown_role`; 422 `owner_not_assignable`, `invalid_role`."""
    changed = console.members.change(account_id, workspace_id, member_id, body.role,
                                     body.custom_role_id)
    console.nudge_relay()
    return member_out(changed)


@router.delete("/workspaces/{workspace_id}/members/{member_id}", status_code=204,
               tags=["console: members"], responses=error_responses(401, 403, 404))
def remove_member(workspace_id: str, member_id: str, console: ConsoleDep,
                  account_id: AccountDep) -> None:
    """Remove a member (owner and administrators), or leave (your own account id: anyone but
    the owner). Errors: 403 `owner_protected`; 404 `member_not_found`."""
    console.members.remove(account_id, workspace_id, member_id)
    console.nudge_relay()


@router.get("/workspaces/{workspace_id}/roles", tags=["console: members"],
            responses=error_responses(401, 404))
def list_roles(workspace_id: str, console: ConsoleDep,
               account_id: AccountDep) -> dict[str, list[CustomRoleOut]]:
    """The workspace's custom roles with how many members hold each."""
    return {"roles": [role_out(r) for r in console.members.roles_of(account_id, workspace_id)]}


@router.post("/workspaces/{workspace_id}/roles", status_code=201, response_model=CustomRoleOut,
             tags=["console: members"], responses=error_responses(401, 403, 404, 409, 422))
def create_role(workspace_id: str, body: CustomRoleIn, console: ConsoleDep,
                account_id: AccountDep) -> CustomRoleOut:
    """Create a custom role (owner and administrators). Errors: 409 `role_name_taken`,
    `role_limit`; 422 `invalid_role_name`, `invalid_permission`."""
    return role_out(console.members.create_role(account_id, workspace_id, body.name,
                                                body.permissions))


@router.put("/workspaces/{workspace_id}/roles/{role_id}", response_model=CustomRoleOut,
            tags=["console: members"], responses=error_responses(401, 403, 404, 409, 422))
def update_role(workspace_id: str, role_id: str, body: CustomRoleIn, console: ConsoleDep,
                account_id: AccountDep) -> CustomRoleOut:
    """Rename a custom role or change what it grants; its members have the new grants at
    once. Errors: 404 `unknown_role`; 409 `role_name_taken`; 422 as on create."""
    return role_out(console.members.update_role(account_id, workspace_id, role_id, body.name,
                                                body.permissions))


@router.delete("/workspaces/{workspace_id}/roles/{role_id}", status_code=204,
               tags=["console: members"], responses=error_responses(401, 403, 404, 409))
def delete_role(workspace_id: str, role_id: str, console: ConsoleDep,
                account_id: AccountDep) -> None:
    """Delete a custom role nobody holds. Errors: 404 `unknown_role`; 409 `role_in_use`."""
    console.members.delete_role(account_id, workspace_id, role_id)


def member_out(member: Member) -> MemberOut:
    return MemberOut(account_id=member.account_id, email=member.email, role=member.role,
                     role_name=member.role_name, custom_role_id=member.custom_role_id,
                     pending_role=member.pending_role,
                     pending_since=_iso(member.pending_since), added_at=_iso(member.added_at))


def role_out(role: CustomRole) -> CustomRoleOut:
    return CustomRoleOut(id=role.id, name=role.name, permissions=list(role.permissions),
                         members=role.members, created_at=role.created_at.isoformat())


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())
