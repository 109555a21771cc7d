"""The strict parsers of untrusted simulation output (``SorobanTransactionData``,
``SorobanAuthorizationEntry``, ``SCVal``) agree with XDR built by stellar-sdk, and refuse every
truncation, trailing byte, bad discriminant, bad flag and non-zero padding byte."""

from __future__ import annotations

import contextlib
import random

import pytest
from stellar_sdk import Keypair, Network, scval
from stellar_sdk import xdr as sx
from stellar_sdk.auth import authorize_entry

from shard_worker import strict_xdr, txxdr
from sorotask_core.signing import Signer, network_id
from sorotask_core.xdr import DecodeError
from tests.support.ledger_entries import CONTRACT_ID
from tests.support.reference_contract import counter_ledger_key, task_ledger_key

PASS = Network.STANDALONE_NETWORK_PASSPHRASE
NET_ID = network_id(PASS)
KP = Keypair.random()


def _hash(byte: int) -> sx.Hash:
    return sx.Hash(bytes([byte]) * 32)


def _contract_addr() -> sx.SCAddress:
    return scval.to_address(CONTRACT_ID).address  # type: ignore[union-attr]


def every_ledger_key_kind() -> list[sx.LedgerKey]:
    acc = KP.xdr_account_id()
    lk, t = sx.LedgerKey, sx.LedgerEntryType
    a4 = sx.AlphaNum4(sx.AssetCode4(b"USD\0"), acc)
    a12 = sx.AlphaNum12(sx.AssetCode12(b"LONGASSET\0\0\0"), acc)
    trust = [
        sx.TrustLineAsset(sx.AssetType.ASSET_TYPE_NATIVE),
        sx.TrustLineAsset(sx.AssetType.ASSET_TYPE_CREDIT_ALPHANUM4, alpha_num4=a4),
        sx.TrustLineAsset(sx.AssetType.ASSET_TYPE_CREDIT_ALPHANUM12, alpha_num12=a12),
        sx.TrustLineAsset(
            sx.AssetType.ASSET_TYPE_POOL_SHARE, liquidity_pool_id=sx.PoolID(_hash(3))
        ),
    ]
    return [
        lk(t.ACCOUNT, account=sx.LedgerKeyAccount(acc)),
        *(lk(t.TRUSTLINE, trust_line=sx.LedgerKeyTrustLine(acc, a)) for a in trust),
        lk(t.OFFER, offer=sx.LedgerKeyOffer(acc, sx.Int64(-9))),
        lk(t.DATA, data=sx.LedgerKeyData(acc, sx.String64(b"name"))),
        lk(
            t.CLAIMABLE_BALANCE,
            claimable_balance=sx.LedgerKeyClaimableBalance(
                sx.ClaimableBalanceID(
                    sx.ClaimableBalanceIDType.CLAIMABLE_BALANCE_ID_TYPE_V0, v0=_hash(4)
                )
            ),
        ),
        lk(t.LIQUIDITY_POOL, liquidity_pool=sx.LedgerKeyLiquidityPool(sx.PoolID(_hash(5)))),
        lk(
            t.CONTRACT_DATA,
            contract_data=sx.LedgerKeyContractData(
                _contract_addr(), scval.to_string("k"), sx.ContractDataDurability.TEMPORARY
            ),
        ),
        lk(t.CONTRACT_CODE, contract_code=sx.LedgerKeyContractCode(_hash(6))),
        lk(
            t.CONFIG_SETTING,
            config_setting=sx.LedgerKeyConfigSetting(
                sx.ConfigSettingID.CONFIG_SETTING_CONTRACT_MAX_SIZE_BYTES
            ),
        ),
        lk(t.TTL, ttl=sx.LedgerKeyTtl(_hash(7))),
        counter_ledger_key(CONTRACT_ID),
        task_ledger_key(CONTRACT_ID, 5),
    ]


def soroban_data(
    ro: list[sx.LedgerKey], rw: list[sx.LedgerKey], archived: list[int] | None = None
) -> sx.SorobanTransactionData:
    ext = (
        sx.SorobanTransactionDataExt(1, sx.SorobanResourcesExtV0([sx.Uint32(i) for i in archived]))
        if archived is not None
        else sx.SorobanTransactionDataExt(0)
    )
    return sx.SorobanTransactionData(
        ext=ext,
        resources=sx.SorobanResources(
            footprint=sx.LedgerFootprint(read_only=ro, read_write=rw),
            instructions=sx.Uint32(1_234_567),
            disk_read_bytes=sx.Uint32(2_000),
            write_bytes=sx.Uint32(3_000),
        ),
        resource_fee=sx.Int64(98_765),
    )


def every_scval() -> list[sx.SCVal]:
    err = sx.SCError(sx.SCErrorType.SCE_CONTRACT, contract_code=sx.Uint32(2))
    host_err = sx.SCError(sx.SCErrorType.SCE_AUTH, code=sx.SCErrorCode.SCEC_INVALID_ACTION)
    return [
        scval.to_bool(True),
        scval.to_bool(False),
        scval.to_void(),
        sx.SCVal(sx.SCValType.SCV_ERROR, error=err),
        sx.SCVal(sx.SCValType.SCV_ERROR, error=host_err),
        scval.to_uint32(7),
        scval.to_int32(-7),
        scval.to_uint64(2**64 - 1),
        scval.to_int64(-(2**63)),
        scval.to_timepoint(1_700_000_000),
        scval.to_duration(60),
        scval.to_uint128(2**100),
        scval.to_int128(-(2**100)),
        scval.to_uint256(2**200),
        scval.to_int256(-(2**200)),
        scval.to_bytes(b"\x01\x02\x03"),
        scval.to_string("hello"),
        scval.to_symbol("execute"),
        scval.to_address(KP.public_key),
        scval.to_address(CONTRACT_ID),
        scval.to_vec([scval.to_uint64(1), scval.to_vec([])]),
        scval.to_map({scval.to_symbol("a"): scval.to_int128(5)}),
        sx.SCVal(sx.SCValType.SCV_VEC, vec=None),
        sx.SCVal(sx.SCValType.SCV_LEDGER_KEY_CONTRACT_INSTANCE),
        sx.SCVal(sx.SCValType.SCV_LEDGER_KEY_NONCE, nonce_key=sx.SCNonceKey(sx.Int64(-3))),
    ]


def contract_fn_invocation(
    fn: str = "execute", args: list[sx.SCVal] | None = None, subs: int = 0
) -> sx.SorobanAuthorizedInvocation:
    return sx.SorobanAuthorizedInvocation(
        function=sx.SorobanAuthorizedFunction(
            sx.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN,
            contract_fn=sx.InvokeContractArgs(
                contract_address=_contract_addr(),
                function_name=sx.SCSymbol(fn.encode()),
                args=args if args is not None else [scval.to_address(KP.public_key)],
            ),
        ),
        sub_invocations=[contract_fn_invocation("inner", [], subs - 1) for _ in range(2)]
        if subs > 0
        else [],
    )


def address_entry(
    invocation: sx.SorobanAuthorizedInvocation, nonce: int = -5, who: str = KP.public_key
) -> sx.SorobanAuthorizationEntry:
    return sx.SorobanAuthorizationEntry(
        credentials=sx.SorobanCredentials(
            sx.SorobanCredentialsType.SOROBAN_CREDENTIALS_ADDRESS,
            address=sx.SorobanAddressCredentials(
                address=scval.to_address(who).address,  # type: ignore[union-attr]
                nonce=sx.Int64(nonce),
                signature_expiration_ledger=sx.Uint32(0),
                signature=scval.to_void(),
            ),
        ),
        root_invocation=invocation,
    )


def source_entry(invocation: sx.SorobanAuthorizedInvocation) -> sx.SorobanAuthorizationEntry:
    return sx.SorobanAuthorizationEntry(
        credentials=sx.SorobanCredentials(
            sx.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT
        ),
        root_invocation=invocation,
    )


def create_contract_invocation(v2: bool, from_asset: bool) -> sx.SorobanAuthorizedInvocation:
    if from_asset:
        preimage = sx.ContractIDPreimage(
            sx.ContractIDPreimageType.CONTRACT_ID_PREIMAGE_FROM_ASSET,
            from_asset=sx.Asset(
                sx.AssetType.ASSET_TYPE_CREDIT_ALPHANUM4,
                alpha_num4=sx.AlphaNum4(sx.AssetCode4(b"USD\0"), KP.xdr_account_id()),
            ),
        )
        executable = sx.ContractExecutable(
            sx.ContractExecutableType.CONTRACT_EXECUTABLE_STELLAR_ASSET
        )
    else:
        preimage = sx.ContractIDPreimage(
            sx.ContractIDPreimageType.CONTRACT_ID_PREIMAGE_FROM_ADDRESS,
            from_address=sx.ContractIDPreimageFromAddress(
                scval.to_address(KP.public_key).address,  # type: ignore[union-attr]
                sx.Uint256(b"\x11" * 32),
            ),
        )
        executable = sx.ContractExecutable(
            sx.ContractExecutableType.CONTRACT_EXECUTABLE_WASM, wasm_hash=_hash(8)
        )
    t = sx.SorobanAuthorizedFunctionType
    if v2:
        fn = sx.SorobanAuthorizedFunction(
            t.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CREATE_CONTRACT_V2_HOST_FN,
            create_contract_v2_host_fn=sx.CreateContractArgsV2(
                preimage, executable, [scval.to_uint64(1)]
            ),
        )
    else:
        fn = sx.SorobanAuthorizedFunction(
            t.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CREATE_CONTRACT_HOST_FN,
            create_contract_host_fn=sx.CreateContractArgs(preimage, executable),
        )
    return sx.SorobanAuthorizedInvocation(function=fn, sub_invocations=[])


def assert_every_cut_refused(raw: bytes, parse: object) -> None:
    """Every proper prefix and every one-byte extension is a DecodeError."""
    for n in range(len(raw)):
        with pytest.raises(DecodeError):
            parse(raw[:n])  # type: ignore[operator]
    with pytest.raises(DecodeError):
        parse(raw + b"\0")  # type: ignore[operator]
    with pytest.raises(DecodeError):
        parse(raw + b"\0\0\0\0")  # type: ignore[operator]


def assert_garbage_only_decode_errors(raw: bytes, parse: object, seed: int) -> None:
    """Random byte flips: either a value that parses or a DecodeError, nothing else."""
    rng = random.Random(seed)
    for _ in range(400):
        data = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        with contextlib.suppress(DecodeError):
            parse(bytes(data))  # type: ignore[operator]
    for _ in range(200):
        blob = bytes(rng.randrange(256) for _ in range(rng.randint(0, 120)))
        with contextlib.suppress(DecodeError):
            parse(blob)  # type: ignore[operator]


class TestSorobanData:
    def test_every_field_and_key_kind_equals_the_sdk(self) -> None:
        keys = every_ledger_key_kind()
        for archived in (None, [], [0, 2]):
            sdk = soroban_data(keys[:9], keys[9:], archived)
            parsed = strict_xdr.parse_soroban_data(sdk.to_xdr_bytes())
            assert parsed.read_only == tuple(k.to_xdr_bytes() for k in keys[:9])
            assert parsed.read_write == tuple(k.to_xdr_bytes() for k in keys[9:])
            assert (parsed.instructions, parsed.disk_read_bytes, parsed.write_bytes) == (
                1_234_567,
                2_000,
                3_000,
            )
            assert parsed.resource_fee == 98_765
            assert parsed.archived == tuple(archived or ())
            assert strict_xdr.footprint_read_write(sdk.to_xdr_bytes()) == list(parsed.read_write)

    def test_empty_footprint(self) -> None:
        parsed = strict_xdr.parse_soroban_data(soroban_data([], []).to_xdr_bytes())
        assert parsed.read_only == parsed.read_write == ()

    def test_truncations_and_trailing_bytes_are_refused(self) -> None:
        keys = every_ledger_key_kind()
        raw = soroban_data(keys[:5], keys[5:], [1]).to_xdr_bytes()
        assert_every_cut_refused(raw, strict_xdr.parse_soroban_data)

    def test_bad_discriminants_flags_counts_and_padding_are_refused(self) -> None:
        key = sx.LedgerKey(
            sx.LedgerEntryType.DATA, data=sx.LedgerKeyData(KP.xdr_account_id(), sx.String64(b"a"))
        )
        raw = soroban_data([], [key]).to_xdr_bytes()
        pad_at = raw.index(b"a\0\0\0") + 1
        cases = {
            "ext": b"\0\0\0\x02" + raw[4:],
            "read-only count": raw[:4] + b"\x7f\xff\xff\xff" + raw[8:],
            "ledger key type": raw[:12] + b"\0\0\0\x63" + raw[16:],
            "padding": raw[:pad_at] + b"\x01" + raw[pad_at + 1 :],
        }
        for name, bad in cases.items():
            with pytest.raises(DecodeError):
                strict_xdr.parse_soroban_data(bad)
            assert bad != raw, name
        long_name = soroban_data(
            [],
            [
                sx.LedgerKey(
                    sx.LedgerEntryType.DATA,
                    data=sx.LedgerKeyData(KP.xdr_account_id(), sx.String64(b"n" * 64)),
                )
            ],
        ).to_xdr_bytes()
        strict_xdr.parse_soroban_data(long_name)
        too_long = long_name.replace(b"\0\0\0\x40" + b"n" * 64, b"\0\0\0\x44" + b"n" * 68)
        with pytest.raises(DecodeError, match="maximum"):
            strict_xdr.parse_soroban_data(too_long)

    def test_not_bytes_is_a_decode_error(self) -> None:
        with pytest.raises(DecodeError):
            strict_xdr.parse_soroban_data("AAAA")  # type: ignore[arg-type]

    def test_garbage_gives_only_decode_errors(self) -> None:
        keys = every_ledger_key_kind()
        raw = soroban_data(keys[:5], keys[5:], [0]).to_xdr_bytes()
        assert_garbage_only_decode_errors(raw, strict_xdr.parse_soroban_data, seed=1)


class TestScval:
    def test_every_kind_the_sdk_writes_parses(self) -> None:
        for val in every_scval():
            strict_xdr.parse_scval(val.to_xdr_bytes())

    def test_truncations_and_bad_values_are_refused(self) -> None:
        for val in every_scval():
            raw = val.to_xdr_bytes()
            for n in range(len(raw)):
                with pytest.raises(DecodeError):
                    strict_xdr.parse_scval(raw[:n])
            with pytest.raises(DecodeError):
                strict_xdr.parse_scval(raw + b"\0\0\0\0")
        for bad in (
            b"\0\0\0\0\0\0\0\x02",  # bool 2
            b"\0\0\0\x10\0\0\0\x02",  # vec optional flag 2
            b"\0\0\0\x0f\0\0\0\x21" + b"a" * 36,  # symbol longer than 32
            b"\0\0\0\x0f\0\0\0\x01a\0\0\x01",  # non-zero padding
            b"\0\0\0\x13",  # contract instance: never an argument
            b"\0\0\0\x63",  # unknown type
            b"\0\0\0\x12\0\0\0\x07" + b"\0" * 32,  # unknown address type
        ):
            with pytest.raises(DecodeError):
                strict_xdr.parse_scval(bad)

    def test_deep_nesting_is_refused(self) -> None:
        val = scval.to_void()
        for _ in range(strict_xdr.MAX_XDR_DEPTH + 2):
            val = scval.to_vec([val])
        with pytest.raises(DecodeError, match="deeply"):
            strict_xdr.parse_scval(val.to_xdr_bytes())


class TestAuthEntry:
    def test_address_credentials_and_root_equal_the_sdk(self) -> None:
        args = [scval.to_address(KP.public_key), scval.to_uint64(5)]
        entry = address_entry(contract_fn_invocation(args=args), nonce=-(2**63))
        signed = authorize_entry(entry, KP, 4321, PASS)
        for sdk, expiry in ((entry, 0), (signed, 4321)):
            parsed = strict_xdr.parse_auth_entry(sdk.to_xdr_bytes())
            assert parsed.credentials == strict_xdr.SOROBAN_CREDENTIALS_ADDRESS
            assert parsed.address == scval.to_address(KP.public_key).address.to_xdr_bytes()  # type: ignore[union-attr]
            assert parsed.nonce == -(2**63)
            assert parsed.signature_expiration_ledger == expiry
            assert parsed.function_type == strict_xdr.AUTH_FN_CONTRACT
            assert parsed.contract == _contract_addr().to_xdr_bytes()
            assert parsed.function == b"execute"
            assert parsed.args == tuple(a.to_xdr_bytes() for a in args)
            assert parsed.sub_invocations == 0

    def test_source_account_credentials_and_sub_invocations(self) -> None:
        parsed = strict_xdr.parse_auth_entry(
            source_entry(contract_fn_invocation(subs=3)).to_xdr_bytes()
        )
        assert parsed.credentials == strict_xdr.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT
        assert parsed.address is None
        assert parsed.sub_invocations == 2 + 4 + 8  # two children each level, three levels

    def test_create_contract_roots_parse(self) -> None:
        for v2 in (False, True):
            for from_asset in (False, True):
                inv = create_contract_invocation(v2, from_asset)
                parsed = strict_xdr.parse_auth_entry(address_entry(inv).to_xdr_bytes())
                assert parsed.function_type == (
                    strict_xdr.AUTH_FN_CREATE_CONTRACT_V2
                    if v2
                    else strict_xdr.AUTH_FN_CREATE_CONTRACT
                )
                assert parsed.contract is None and parsed.function is None

    def test_truncations_and_trailing_bytes_are_refused(self) -> None:
        entry = address_entry(contract_fn_invocation(subs=1))
        for sdk in (entry, authorize_entry(entry, KP, 99, PASS)):
            assert_every_cut_refused(sdk.to_xdr_bytes(), strict_xdr.parse_auth_entry)
        assert_every_cut_refused(
            source_entry(create_contract_invocation(True, False)).to_xdr_bytes(),
            strict_xdr.parse_auth_entry,
        )

    def test_bad_discriminants_are_refused(self) -> None:
        raw = source_entry(contract_fn_invocation()).to_xdr_bytes()
        for bad in (
            b"\0\0\0\x02" + raw[4:],  # credentials type
            raw[:4] + b"\0\0\0\x03" + raw[8:],  # authorized function type
            raw[:8] + b"\0\0\0\x09" + raw[12:],  # contract SCAddress type
        ):
            with pytest.raises(DecodeError):
                strict_xdr.parse_auth_entry(bad)

    def test_garbage_gives_only_decode_errors(self) -> None:
        raw = authorize_entry(address_entry(contract_fn_invocation(subs=1)), KP, 9, PASS)
        assert_garbage_only_decode_errors(raw.to_xdr_bytes(), strict_xdr.parse_auth_entry, seed=2)

    def test_sign_auth_entry_refuses_a_truncated_entry(self) -> None:
        raw = address_entry(contract_fn_invocation()).to_xdr_bytes()
        signer = Signer.from_secret(KP.secret)
        txxdr.sign_auth_entry(raw, signer, 9, NET_ID)
        for n in (len(raw) // 2, len(raw) - 4, len(raw) - 1):
            with pytest.raises(DecodeError):
                txxdr.sign_auth_entry(raw[:n], signer, 9, NET_ID)
