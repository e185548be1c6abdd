package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
)

// APIError is a refusal from the service's REST API.
type APIError struct {
	Method, Path string
	// StatusCode is the HTTP status (404: no such call or conference; 409: not in a state
	// that allows it; 503: retry later...).
	StatusCode int
	// Code and Message are the service's error body, when it sent one.
	Code, Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("sdk: %s %s: status %d %s: %s", e.Method, e.Path, e.StatusCode, e.Code, e.Message)
}

// Join asks the service to join the bot to conferenceID. The service then sends this handler an
// incoming call for Operation.CallID (IncomingCall.JoinOperationID is the operation's id), which
// the bot answers as any other; the Operation completes when the join succeeded or failed.
func (h *Handler) Join(ctx context.Context, conferenceID string) (*Operation, error) {
	if !protocol.ValidID(conferenceID) {
		return nil, fmt.Errorf("sdk: join: conference id %q is not valid", conferenceID)
	}
	data, err := h.do(ctx, http.MethodPost, protocol.JoinPath(conferenceID), protocol.JoinRequest{CallbackURI: h.public}, http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	resp, err := protocol.DecodeJoinResponse(data)
	if err != nil {
		return nil, fmt.Errorf("sdk: join %s: %w", conferenceID, err)
	}
	op := newOperation(resp.OperationID, resp.CallID, OperationJoin)
	if err := h.register(op); err != nil {
		return nil, err
	}
	return op, nil
}

// Invite asks the service to invite the bot appID into conferenceID; the Operation completes
// with the outcome.
func (h *Handler) Invite(ctx context.Context, conferenceID, appID string) (*Operation, error) {
	if !protocol.ValidID(conferenceID) || !protocol.ValidID(appID) {
		return nil, fmt.Errorf("sdk: invite %q to %q: not valid ids", appID, conferenceID)
	}
	data, err := h.do(ctx, http.MethodPost, protocol.InvitationsPath(conferenceID), protocol.InviteRequest{AppID: appID}, http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	resp, err := protocol.DecodeOperationResponse(data)
	if err != nil {
		return nil, fmt.Errorf("sdk: invite %s to %s: %w", appID, conferenceID, err)
	}
	op := newOperation(resp.OperationID, "", OperationInvite)
	if err := h.register(op); err != nil {
		return nil, err
	}
	return op, nil
}

// do makes one signed request to the service and returns the body of a response with status
// want; any other status is an *APIError.
func (h *Handler) do(ctx context.Context, method, path string, in any, want int) ([]byte, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("sdk: %s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(data)
	}
	token, err := h.signer.Sign()
	if err != nil {
		return nil, fmt.Errorf("sdk: %s %s: %w", method, path, err)
	}
	u := *h.service
	u.Path = h.service.Path + path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("sdk: %s %s: %w", method, path, err)
	}
	req.Header.Set(protocol.HeaderAuthorization, "Bearer "+token)
	if in != nil {
		req.Header.Set("Content-Type", protocol.ContentTypeJSON)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sdk: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := protocol.ReadBody(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("sdk: %s %s: response: %w", method, path, err)
	}
	if resp.StatusCode != want {
		e := &APIError{Method: method, Path: path, StatusCode: resp.StatusCode}
		if eb, err := protocol.DecodeErrorBody(data); err == nil {
			e.Code, e.Message = string(eb.Error.Code), eb.Error.Message
		}
		return nil, e
	}
	return data, nil
}
