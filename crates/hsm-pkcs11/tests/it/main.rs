//! Integration tests against throwaway SoftHSM2 tokens on tmpfs, created here with
//! `softhsm2-util`: configuration and connection errors, the object layout on the token,
//! and keys changed behind the provider's back.
//!
//! `harness = false`: SoftHSM reads `SOFTHSM2_CONF` when the module is initialized, so
//! `main` sets it while the process is still single-threaded, creates every token, then
//! runs the tests with libtest-mimic.
//!
//! Without SoftHSM2 (or OpenSC's `pkcs11-tool`, for the interop tests) the tests are
//! skipped with a message, unless `HSM_REQUIRE_SERVERS` is set (`cargo xtask ci` sets it),
//! in which case they fail.

mod interop;
mod token;
mod vectors;

use std::process::ExitCode;
use std::sync::Arc;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use hsm_core::{CreateKey, Error, KeySpec, KeyUsage, ListKeys, Provider, ProviderExt as _, Zeroizing};
use hsm_pkcs11::softhsm::{MODULE, SoftHsm};
use hsm_pkcs11::{PinSource, Pkcs11Config, Pkcs11Provider, TokenSelector};
use libtest_mimic::{Arguments, Failed, Trial};

pub(crate) const PIN: &str = "1234";

/// Whether `HSM_REQUIRE_SERVERS` asks for failures instead of skips (the same check as
/// `hsm_aws::moto::servers_required`, kept local to avoid the dependency).
pub(crate) fn servers_required() -> bool {
    std::env::var_os("HSM_REQUIRE_SERVERS").is_some_and(|v| !v.is_empty())
}

fn cfg(token: &str, pin: &str) -> Pkcs11Config {
    Pkcs11Config::new(
        MODULE,
        TokenSelector::Label(token.into()),
        PinSource::Value(Zeroizing::new(pin.into())),
    )
}

fn main_token() -> Pkcs11Provider {
    connect("main")
}

pub(crate) fn connect(token: &str) -> Pkcs11Provider {
    Pkcs11Provider::connect(&cfg(token, PIN)).unwrap_or_else(|e| panic!("connect to test token {token}: {e}"))
}

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// A raw session on `token`, logged in, as another PKCS#11 application would have.
pub(crate) fn raw_session(token: &str) -> Session {
    let ctx = Pkcs11::new(MODULE).expect("load module");
    // Already initialized by the provider in this process: that is fine.
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == token)
        .expect("token slot");
    let s = ctx.open_rw_session(slot).unwrap();
    // The provider already logged this process in; a second login is refused harmlessly.
    let _ = s.login(UserType::User, Some(&AuthPin::from(PIN)));
    s
}

pub(crate) fn check(cond: bool, msg: impl Into<String>) -> Result<(), Failed> {
    if cond { Ok(()) } else { Err(msg.into().into()) }
}

fn missing_module() -> Result<(), Failed> {
    let c = Pkcs11Config::new(
        "/nonexistent/libnothing.so",
        TokenSelector::Label("main".into()),
        PinSource::Value(Zeroizing::new(PIN.into())),
    );
    let e = Pkcs11Provider::connect(&c).unwrap_err();
    check(matches!(e, Error::Config { .. }) && e.to_string().contains("module-path"), format!("{e}"))
}

fn module_that_is_not_pkcs11() -> Result<(), Failed> {
    let dir = std::env::temp_dir().join(format!("hsm-notamodule-{}", std::process::id()));
    std::fs::write(&dir, b"not a shared library")?;
    let c = Pkcs11Config::new(
        &dir,
        TokenSelector::Label("main".into()),
        PinSource::Value(Zeroizing::new(PIN.into())),
    );
    let e = Pkcs11Provider::connect(&c).unwrap_err();
    let _ = std::fs::remove_file(&dir);
    check(matches!(e, Error::Config { .. }), format!("{e}"))
}

fn no_such_token() -> Result<(), Failed> {
    let e = Pkcs11Provider::connect(&cfg("nope", PIN)).unwrap_err();
    check(
        matches!(e, Error::Config { .. }) && e.to_string().contains("'main'"),
        format!("lists the tokens: {e}"),
    )
}

fn two_tokens_match() -> Result<(), Failed> {
    let e = Pkcs11Provider::connect(&cfg("dup", PIN)).unwrap_err();
    check(matches!(e, Error::Config { .. }) && e.to_string().contains("2 tokens"), format!("{e}"))
}

fn wrong_pin_is_unauthenticated_and_not_printed() -> Result<(), Failed> {
    // A token nobody in this process logs in to: the real C_Login path.
    let e = Pkcs11Provider::connect(&cfg("lonely", "9999-wrong")).unwrap_err();
    check(matches!(e, Error::Unauthenticated { .. }), format!("{e}"))?;
    check(e.to_string().contains("CKR_PIN_INCORRECT"), format!("{e}"))?;
    check(!e.to_string().contains("9999"), "PIN in the error")?;
    // The main token is logged in by other tests in this process: a wrong PIN is still refused.
    let _keep = main_token();
    let e = Pkcs11Provider::connect(&cfg("main", "0000")).unwrap_err();
    check(matches!(e, Error::Unauthenticated { .. }), format!("{e}"))
}

fn pin_from_file_and_env() -> Result<(), Failed> {
    let path = std::env::temp_dir().join(format!("hsm-pin-{}", std::process::id()));
    std::fs::write(&path, format!("{PIN}\n"))?;
    let c = Pkcs11Config::new(MODULE, TokenSelector::Label("main".into()), PinSource::File(path.clone()));
    let p = Pkcs11Provider::connect(&c);
    let _ = std::fs::remove_file(&path);
    let p = p.map_err(|e| format!("connect with a PIN file: {e}"))?;
    let c = Pkcs11Config::new(
        MODULE,
        TokenSelector::Label("main".into()),
        PinSource::Env("HSM_IT_NO_SUCH_VAR".into()),
    );
    check(matches!(Pkcs11Provider::connect(&c), Err(Error::Config { .. })), "unset PIN variable")?;
    check(!format!("{p:?}").contains(PIN), "PIN in Debug")?;
    check(p.token_label() == "main", "label")
}

fn uri_connects() -> Result<(), Failed> {
    let c = Pkcs11Config::from_uri(&format!("pkcs11:token=main?module-path={MODULE}&pin-value={PIN}"))?;
    let p = Pkcs11Provider::connect(&c)?;
    check(p.name() == "pkcs11", "name")
}

fn layout_on_the_token() -> Result<(), Failed> {
    let p = main_token();
    let rt = rt();
    let name = "it-layout";
    let info = rt.block_on(
        p.create_key(
            CreateKey::new(name, KeySpec::Aes256)
                .usage(KeyUsage::EncryptDecrypt)
                .description("layout")
                .tag("team", "x"),
        ),
    )?;
    check(info.native_id == format!("pkcs11:token=main;object={name}"), info.native_id.clone())?;
    rt.block_on(p.rotate_key(&name.into()))?;
    let s = raw_session("main");
    // One metadata object: CKO_DATA, application "hsm", label = name, JSON value.
    let metas =
        s.find_objects(&[Attribute::Class(ObjectClass::DATA), Attribute::Label(name.as_bytes().to_vec())])?;
    check(metas.len() == 1, format!("{} metadata objects", metas.len()))?;
    let attrs = s.get_attributes(metas[0], &[AttributeType::Application, AttributeType::Value])?;
    let mut json = serde_json_value(&attrs);
    check(attrs.iter().any(|a| matches!(a, Attribute::Application(v) if v == b"hsm")), "application")?;
    json.retain(|c| !c.is_whitespace());
    for needle in
        [r#""format":1"#, r#""spec":"aes-256""#, r#""versions":[1,2]"#, r#""current":2"#, r#""team":"x""#]
    {
        check(json.contains(needle), format!("{needle} in {json}"))?;
    }
    // Two AES key objects, ids name#1 and name#2, sensitive and not extractable.
    for v in [1, 2] {
        let ks = s.find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Id(format!("{name}#{v}").into_bytes()),
        ])?;
        check(ks.len() == 1, format!("version {v}: {} objects", ks.len()))?;
        let a = s.get_attributes(
            ks[0],
            &[AttributeType::Sensitive, AttributeType::Extractable, AttributeType::Label],
        )?;
        check(a.contains(&Attribute::Sensitive(true)), "sensitive")?;
        check(a.contains(&Attribute::Extractable(false)), "not extractable")?;
        check(a.contains(&Attribute::Label(name.as_bytes().to_vec())), "label")?;
    }
    // Disable: the state is in the metadata, and use is refused.
    rt.block_on(p.set_key_state(&name.into(), hsm_core::KeyState::Disabled))?;
    let e = rt.block_on(p.encrypt_default(&name.into(), b"x", None)).unwrap_err();
    check(matches!(e, Error::KeyUnusable { .. }), format!("{e}"))?;
    rt.block_on(p.schedule_deletion(&name.into(), Some(std::time::Duration::ZERO)))?;
    let left = s.find_objects(&[Attribute::Label(name.as_bytes().to_vec())])?;
    check(left.is_empty(), format!("{} objects left after immediate deletion", left.len()))
}

fn serde_json_value(attrs: &[Attribute]) -> String {
    attrs
        .iter()
        .find_map(|a| match a {
            Attribute::Value(v) => Some(String::from_utf8_lossy(v).into_owned()),
            _ => None,
        })
        .unwrap_or_default()
}

fn deleted_behind_our_back() -> Result<(), Failed> {
    let p = main_token();
    let rt = rt();
    let name = "it-vanish";
    rt.block_on(p.create_key(CreateKey::new(name, KeySpec::EcP256)))?;
    let s = raw_session("main");
    for h in s.find_objects(&[Attribute::Id(format!("{name}#1").into_bytes())])? {
        s.destroy_object(h)?;
    }
    let e = rt.block_on(p.sign_message(&name.into(), b"m")).unwrap_err();
    check(matches!(e, Error::NotFound { .. }), format!("{e}"))?;
    // The metadata is still there, so the name is still taken until deleted.
    rt.block_on(p.schedule_deletion(&name.into(), Some(std::time::Duration::ZERO)))?;
    check(matches!(rt.block_on(p.get_key(&name.into())), Err(Error::NotFound { .. })), "gone")
}

fn names_are_unique_and_listed() -> Result<(), Failed> {
    let p: Arc<dyn Provider> = Arc::new(main_token());
    let rt = rt();
    let name = "it-unique";
    rt.block_on(p.create_key(CreateKey::new(name, KeySpec::HmacSha256)))?;
    let e = rt.block_on(p.create_key(CreateKey::new(name, KeySpec::Aes128))).unwrap_err();
    check(matches!(e, Error::AlreadyExists { .. }), format!("{e}"))?;
    let keys = rt.block_on(p.list_all(ListKeys::new().name_prefix("it-unique")))?;
    check(keys.len() == 1 && keys[0].spec == KeySpec::HmacSha256, format!("{keys:?}"))?;
    rt.block_on(p.schedule_deletion(&name.into(), Some(std::time::Duration::ZERO)))?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    if !SoftHsm::available() {
        let why = format!(
            "softhsm2-util or {MODULE} is missing (apt-get install softhsm2; `cargo xtask setup` installs it)"
        );
        if servers_required() {
            eprintln!("hsm-pkcs11 integration tests: {why}, and HSM_REQUIRE_SERVERS is set");
            return ExitCode::FAILURE;
        }
        eprintln!("\n*** skipped: hsm-pkcs11 integration tests: {why} ***\n");
        return ExitCode::SUCCESS;
    }
    let hsm = match SoftHsm::new() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("cannot create a SoftHSM token directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    for label in ["main", "dup", "dup", "lonely", interop::TOKEN, token::RELOGIN, token::REPIN] {
        if let Err(e) = hsm.init_token(label, "12345678", PIN) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    // SAFETY: no other thread exists yet; SoftHSM reads the variable at C_Initialize.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", hsm.conf());
    }
    type Test = fn() -> Result<(), Failed>;
    let tests: &[(&str, Test)] = &[
        ("config::missing_module", missing_module),
        ("config::module_that_is_not_pkcs11", module_that_is_not_pkcs11),
        ("config::no_such_token", no_such_token),
        ("config::two_tokens_match", two_tokens_match),
        (
            "config::wrong_pin_is_unauthenticated_and_not_printed",
            wrong_pin_is_unauthenticated_and_not_printed,
        ),
        ("config::pin_from_file_and_env", pin_from_file_and_env),
        ("config::uri_connects", uri_connects),
        ("layout::objects_on_the_token", layout_on_the_token),
        ("layout::deleted_behind_our_back", deleted_behind_our_back),
        ("layout::names_are_unique_and_listed", names_are_unique_and_listed),
        ("token::relogin_after_logout", token::relogin_after_logout),
        ("token::refused_pin_is_not_retried", token::refused_pin_is_not_retried),
        ("token::deleted_between_calls", token::deleted_between_calls),
        (
            "token::oaep_sha256_declared_as_the_token_does_it",
            token::oaep_sha256_declared_as_the_token_does_it,
        ),
        ("token::secp256k1_as_the_token_does_it", token::secp256k1_as_the_token_does_it),
        ("token::extractable_only_when_asked", token::extractable_only_when_asked),
        ("vectors::rfc3394", vectors::rfc3394),
        ("vectors::rfc5649", vectors::rfc5649),
    ];
    let mut trials: Vec<Trial> = tests.iter().map(|(n, f)| Trial::test(*n, *f)).collect();
    let interop: &[(&str, Test)] = &[
        ("interop::tool_keys_through_hsm", interop::tool_keys_through_hsm),
        ("interop::hsm_keys_through_the_tool", interop::hsm_keys_through_the_tool),
    ];
    let tool = interop::available();
    if !tool && servers_required() {
        eprintln!("OpenSC's pkcs11-tool is missing (apt-get install opensc), and HSM_REQUIRE_SERVERS is set");
        return ExitCode::FAILURE;
    }
    for (n, f) in interop {
        let t = Trial::test(*n, *f);
        trials.push(if tool { t } else { t.with_ignored_flag(true) });
    }
    if !tool {
        eprintln!("skipped: the interop tests: OpenSC's pkcs11-tool is missing (apt-get install opensc)");
    }
    // The module is finalized when its last provider is dropped, which closes every
    // session of the process, including the raw ones tests open as "another
    // application": one provider lives for the whole run so that never happens mid-test.
    let keeper = connect("main");
    let conclusion = libtest_mimic::run(&args, trials);
    drop(keeper);
    drop(hsm);
    conclusion.exit_code()
}
