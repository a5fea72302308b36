"""Image chat about a study (clinical roles; each user sees only their own conversations, and
only those started since the account's last reset or role change: ``accounts.own_since``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exists, select

from medai.platform.access import accounts, audit
from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.api.schemas import ChatIn, ConversationList, ConversationOut, MessageOut
from medai.platform.reading import chat
from medai.platform.records.tables import Conversation, Message, Study
from medai.server.errors import ApiError
from medai.server.inputs import RowId
from medai.server.schemas import error_responses

router = APIRouter(prefix="/api/v1", tags=["chat"])


def _conv_out(db, conv: Conversation, with_messages: bool = True) -> ConversationOut:
    return ConversationOut(
        id=conv.id,
        study_id=conv.study_id,
        created_at=conv.created_at.isoformat() + "Z",
        messages=[MessageOut(**m) for m in chat.messages(db, conv)] if with_messages else [],
    )


@router.post(
    "/studies/{study_id}/conversations",
    response_model=ConversationOut,
    status_code=201,
    responses=error_responses(401, 403, 404, 409),
)
def start_conversation(
    study_id: RowId, request: Request, who: Principal = Depends(require("chat"))
) -> JSONResponse:
    with platform_of(request).db.session() as db:
        study = db.get(Study, study_id)
        if study is None:
            raise ApiError(404, "not_found", f"no study {study_id}")
        conv = chat.start(db, study, who.signed_in)
        audit.record(db, who.actor, "chat", "conversation", conv.id, study=study_id)
        return JSONResponse(_conv_out(db, conv).model_dump(mode="json"), 201)


@router.get("/conversations", response_model=ConversationList, responses=error_responses(401, 403))
def my_conversations(
    request: Request, who: Principal = Depends(require("chat"))
) -> ConversationList:
    with platform_of(request).db.session() as db:
        # a conversation opened and left without a question is not one: not listed
        rows = db.scalars(
            select(Conversation)
            .where(
                Conversation.owner_id == who.signed_in.id,
                accounts.own_since(who.signed_in, Conversation.created_at),
                exists(select(Message.id).where(Message.conversation_id == Conversation.id)),
            )
            .order_by(Conversation.id.desc())
            .limit(200)
        )
        return ConversationList(items=[_conv_out(db, c, False) for c in rows])


@router.get(
    "/conversations/{conv_id}",
    response_model=ConversationOut,
    responses=error_responses(401, 403, 404),
)
def get_conversation(
    conv_id: RowId, request: Request, who: Principal = Depends(require("chat"))
) -> ConversationOut:
    with platform_of(request).db.session() as db:
        conv = chat.own(db, conv_id, who.signed_in)
        audit.record(db, who.actor, "view", "conversation", conv_id)
        return _conv_out(db, conv)


@router.post(
    "/conversations/{conv_id}/messages",
    response_model=MessageOut,
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def ask(
    conv_id: RowId, body: ChatIn, request: Request, who: Principal = Depends(require("chat"))
) -> MessageOut:
    """Ask about the study's image. Without a language model (the default) the answer says so
    and gives the study's findings (each label's one state; once signed, what the radiologist
    signed, the AI's suggestions named as such) and the knowledge-base passages retrieved for
    the question, cited; with one, the model answers from those and cites the passages."""
    answer = await chat.ask(
        platform_of(request),
        conv_id,
        who.signed_in,
        who.actor,
        body.text,
        body.lang,
        request.app.state.imaging_lane.slot,
    )
    return MessageOut(**answer)
