"""Record the SOAP requests a pyVmomi session sends, for request-level assertions.

vcsim accepts several requests and ignores (or mangles) what they ask for —
disk locators, linked clones, shrink, storage policies.  Where inventory can't
show that we asked for the right thing, tests capture the request instead:

    with SoapCapture(session.si) as cap:
        ops.clone_backing(...)
    call = cap.last("CloneVM_Task")
    assert call.args["spec"].location.diskMoveType == "createNewChildDiskBacking"
    assert "<diskMoveType>createNewChildDiskBacking</diskMoveType>" in call.xml

Each call keeps the pyVmomi arguments (as sent) and the serialized SOAP body.
The stub's ``InvokeMethod`` is wrapped on the instance and restored on exit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class SoapCall:
    method: str  # WSDL name, e.g. "CloneVM_Task"
    this: Any  # the managed object the method was invoked on
    args: dict[str, Any]
    xml: str  # the SOAP request body as sent


def _stubs(si_or_stub: Any) -> list[Any]:
    """The stub objects that see every call: the outer stub and, if pooled/session-oriented, the inner."""
    stub = getattr(si_or_stub, "_stub", si_or_stub)
    stubs = [stub]
    inner = getattr(stub, "soapStub", None)
    if inner is not None:
        stubs.append(inner)
    return stubs


class SoapCapture:
    """Context manager recording (method, args, xml) for every SOAP call on a stub."""

    def __init__(self, si_or_stub: Any, *, fail: dict[str, BaseException] | None = None) -> None:
        """``fail`` maps a method name to an exception raised (once) instead of sending that request,
        to drive error paths vcsim never produces (e.g. NoDiskSpace)."""
        self._fail = dict(fail or {})
        stubs = _stubs(si_or_stub)
        # Wrap the innermost stub that serializes; the outer one may only delegate.
        self._stub = stubs[-1]
        self.calls: list[SoapCall] = []
        self._lock = threading.Lock()
        self._saved: Any = None

    def __enter__(self) -> SoapCapture:
        stub = self._stub
        original = stub.InvokeMethod
        self._saved = original

        def invoke(mo: Any, info: Any, args: Any, *rest: Any, **kw: Any) -> Any:
            try:
                xml = stub.SerializeRequest(mo, info, args)
                xml = xml.decode("utf-8", "replace") if isinstance(xml, bytes) else str(xml)
            except Exception as error:  # noqa: BLE001 - never break the call because of the recorder
                xml = f"<unserializable: {error!r}>"
            names = [p.name for p in info.params]
            with self._lock:
                self.calls.append(SoapCall(info.wsdlName, mo, dict(zip(names, args, strict=False)), xml))
                injected = self._fail.pop(info.wsdlName, None)
            if injected is not None:
                raise injected
            return original(mo, info, args, *rest, **kw)

        stub.InvokeMethod = invoke
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            del self._stub.InvokeMethod  # drop the instance attribute: the class method shows again
        except AttributeError:
            self._stub.InvokeMethod = self._saved

    # ------------------------------------------------------------ queries
    def methods(self) -> list[str]:
        with self._lock:
            return [c.method for c in self.calls]

    def named(self, method: str) -> list[SoapCall]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def last(self, method: str) -> SoapCall:
        found = self.named(method)
        if not found:
            raise AssertionError(f"no {method} request was sent; sent: {self.methods()}")
        return found[-1]

    def count(self, method: str) -> int:
        return len(self.named(method))

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
