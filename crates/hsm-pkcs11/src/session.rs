//! The module (one `C_Initialize` per module path per process), the token, the login and
//! the session pool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use hsm_core::{Error, Result, Zeroizing};

use crate::PROVIDER;
use crate::config::TokenSelector;
use crate::error::{ck, logged_out};

/// One user's handle on a loaded, initialized module. The module is initialized once per
/// path per process and finalized (`C_Finalize`) when its last user drops, both under the
/// registry lock, so a finalize can never undo a concurrent initialize.
pub(crate) struct Module {
    path: PathBuf,
    ctx: Pkcs11,
    /// The PIN this process logged in with, per slot: the token answers a second
    /// `C_Login` with `CKR_USER_ALREADY_LOGGED_IN` without checking the PIN, so we check.
    logins: Arc<Mutex<HashMap<u64, Zeroizing<String>>>>,
    /// Held shared by object searches and exclusively while token objects are created or
    /// destroyed: SoftHSM 2.6 fails `C_GenerateKey`/`C_CreateObject` with
    /// `CKR_GENERAL_ERROR` when another thread runs `C_FindObjects` at the same time.
    objects: Arc<RwLock<()>>,
}

struct Entry {
    ctx: Pkcs11,
    users: usize,
    logins: Arc<Mutex<HashMap<u64, Zeroizing<String>>>>,
    objects: Arc<RwLock<()>>,
}

fn modules() -> &'static Mutex<HashMap<PathBuf, Entry>> {
    static M: OnceLock<Mutex<HashMap<PathBuf, Entry>>> = OnceLock::new();
    M.get_or_init(Default::default)
}

impl Drop for Module {
    fn drop(&mut self) {
        let mut map = modules().lock().unwrap_or_else(PoisonError::into_inner);
        let last = map.get_mut(&self.path).is_some_and(|e| {
            e.users -= 1;
            e.users == 0
        });
        if last
            && let Some(e) = map.remove(&self.path)
            && let Err(err) = e.ctx.finalize()
        {
            tracing::debug!(error = %err, "C_Finalize failed");
        }
    }
}

impl Module {
    /// Loads and initializes `path`, or joins the process's live instance of it.
    pub(crate) fn load(path: &Path) -> Result<Module> {
        let mut map = modules().lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = map.get_mut(path) {
            e.users += 1;
            return Ok(Module {
                path: path.to_owned(),
                ctx: e.ctx.clone(),
                logins: e.logins.clone(),
                objects: e.objects.clone(),
            });
        }
        if !path.is_file() {
            return Err(Error::config(
                PROVIDER,
                format!("PKCS#11 module {} does not exist; check module-path", path.display()),
            ));
        }
        let ctx = Pkcs11::new(path).map_err(|e| ck(e, &format!("loading {}", path.display())))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(ck(e, "C_Initialize")),
        }
        let logins = Arc::new(Mutex::new(HashMap::new()));
        let objects = Arc::new(RwLock::new(()));
        let entry = Entry { ctx: ctx.clone(), users: 1, logins: logins.clone(), objects: objects.clone() };
        map.insert(path.to_owned(), entry);
        Ok(Module { path: path.to_owned(), ctx, logins, objects })
    }

    pub(crate) fn ctx(&self) -> Result<&Pkcs11> {
        Ok(&self.ctx)
    }

    /// The one slot whose token matches `sel`, with its label.
    pub(crate) fn find_slot(&self, sel: &TokenSelector) -> Result<(Slot, String)> {
        let ctx = self.ctx()?;
        let slots = ctx.get_slots_with_token().map_err(|e| ck(e, "C_GetSlotList"))?;
        let mut found = Vec::new();
        let mut seen = Vec::new();
        for slot in slots {
            let Ok(info) = ctx.get_token_info(slot) else { continue };
            let label = info.label().trim_end().to_owned();
            let hit = match sel {
                TokenSelector::Label(l) => label == l.trim_end(),
                TokenSelector::Serial(s) => info.serial_number().trim_end() == s.trim_end(),
                TokenSelector::Slot(id) => slot.id() == *id,
            };
            seen.push(format!("'{label}' (slot {})", slot.id()));
            if hit {
                found.push((slot, label));
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(Error::config(
                PROVIDER,
                format!(
                    "no token matches {sel}; the module has {}",
                    if seen.is_empty() { "no initialized tokens".to_owned() } else { seen.join(", ") }
                ),
            )),
            n => Err(Error::config(
                PROVIDER,
                format!("{n} tokens match {sel}; select the token by serial= or slot-id= instead"),
            )),
        }
    }

    pub(crate) fn mechanisms(&self, slot: Slot) -> Result<Vec<MechanismType>> {
        self.ctx()?.get_mechanism_list(slot).map_err(|e| ck(e, "C_GetMechanismList"))
    }

    /// Logs in on `s` as the user; checks the PIN against ours when already logged in.
    pub(crate) fn login(&self, slot: Slot, s: &Session, pin: &Zeroizing<String>) -> Result<()> {
        let mut logins = self.logins.lock().unwrap_or_else(PoisonError::into_inner);
        match s.login(UserType::User, Some(&AuthPin::from(pin.as_str()))) {
            Ok(()) => {
                logins.insert(slot.id(), pin.clone());
                Ok(())
            }
            Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => match logins.get(&slot.id()) {
                Some(p) if p.as_bytes() == pin.as_bytes() => Ok(()),
                _ => Err(Error::Unauthenticated {
                    provider: PROVIDER,
                    message: "the token is already logged in by this process with another PIN \
                              (CKR_USER_ALREADY_LOGGED_IN); the PIN given could not be checked"
                        .into(),
                }),
            },
            Err(e) => Err(ck(e, "C_Login")),
        }
    }
}

/// Logged-in sessions on one token, reused across calls.
pub(crate) struct Pool {
    pub(crate) module: Module,
    pub(crate) slot: Slot,
    pin: Zeroizing<String>,
    idle: Mutex<Vec<Session>>,
    /// Kept open so the login outlives idle periods (closing the last session logs out).
    anchor: Mutex<Option<Session>>,
    /// Set when the token refused our PIN at a re-login: never try it again (a real HSM
    /// locks the PIN after a few failures); every later call fails until reconnected.
    pin_refused: AtomicBool,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.idle.get_mut().unwrap_or_else(PoisonError::into_inner).clear();
        *self.anchor.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Pool {
    /// Opens the anchor session and logs in.
    pub(crate) fn open(module: Module, slot: Slot, pin: Zeroizing<String>) -> Result<Pool> {
        let anchor = module.ctx()?.open_rw_session(slot).map_err(|e| ck(e, "C_OpenSession"))?;
        module.login(slot, &anchor, &pin)?;
        Ok(Pool {
            module,
            slot,
            pin,
            idle: Mutex::new(Vec::new()),
            anchor: Mutex::new(Some(anchor)),
            pin_refused: AtomicBool::new(false),
        })
    }

    fn take(&self) -> Result<Session> {
        if let Some(s) = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Ok(s);
        }
        self.module.ctx()?.open_rw_session(self.slot).map_err(|e| ck(e, "C_OpenSession"))
    }

    fn refused(&self) -> Result<()> {
        if self.pin_refused.load(Ordering::Acquire) {
            return Err(Error::Unauthenticated {
                provider: PROVIDER,
                message: "the token logged us out and then refused the PIN when we logged in again; \
                          the PIN is not tried again (that could lock it): reconnect with the right PIN"
                    .into(),
            });
        }
        Ok(())
    }

    /// Logs the process in again on `s` after the token logged it out. A refused PIN is
    /// remembered and never tried again.
    fn relogin(&self, s: &Session) -> Result<()> {
        self.refused()?;
        tracing::debug!(slot = self.slot.id(), "the token logged us out; logging in again");
        let r = self.module.login(self.slot, s, &self.pin);
        if let Err(Error::Unauthenticated { .. }) = &r {
            self.pin_refused.store(true, Ordering::Release);
        }
        r
    }

    /// Runs `f` on a pooled session (blocking). The session goes back to the pool only if
    /// `f` succeeded: a failed call may leave an operation unfinished, which poisons the
    /// session.
    ///
    /// When the token has logged us out (another application's `C_Logout`, a token
    /// reset), private objects become invisible rather than errors, so the session's
    /// state is checked first (`C_GetSessionInfo`) and the process logged in again; a
    /// call failing with `CKR_USER_NOT_LOGGED_IN` is retried once after a re-login.
    pub(crate) fn run<T>(&self, f: &dyn Fn(&Tok<'_>) -> std::result::Result<T, Op>) -> Result<T> {
        for attempt in 0..2 {
            self.refused()?;
            let s = self.take()?;
            let state = s.get_session_info().map_err(|e| ck(e, "C_GetSessionInfo"))?.session_state();
            if !matches!(state, SessionState::RwUser | SessionState::RoUser) {
                self.relogin(&s)?;
            }
            match f(&Tok { s: &s, objects: &self.module.objects }) {
                Ok(v) => {
                    self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(s);
                    return Ok(v);
                }
                Err(Op::Ck(e, _)) if attempt == 0 && logged_out(&e) => {
                    self.relogin(&s)?;
                }
                Err(Op::Ck(e, what)) => return Err(ck(e, &what)),
                Err(Op::Hsm(e)) => return Err(e),
            }
        }
        Err(Error::Unauthenticated { provider: PROVIDER, message: "the token keeps logging us out".into() })
    }
}

/// An error inside a pooled call: a raw cryptoki error (so logouts can be retried) with
/// the call it came from, or an hsm error already decided.
pub(crate) enum Op {
    Ck(CkError, String),
    Hsm(Error),
}

impl From<Error> for Op {
    fn from(e: Error) -> Self {
        Op::Hsm(e)
    }
}

/// Attaches the call name to a cryptoki result.
pub(crate) trait Ctx<T> {
    fn at(self, what: &str) -> std::result::Result<T, Op>;
}

impl<T> Ctx<T> for std::result::Result<T, CkError> {
    fn at(self, what: &str) -> std::result::Result<T, Op> {
        self.map_err(|e| Op::Ck(e, what.to_owned()))
    }
}

/// A pooled session, with the object lock of its module (see [`Module`]).
pub(crate) struct Tok<'a> {
    s: &'a Session,
    objects: &'a RwLock<()>,
}

impl std::ops::Deref for Tok<'_> {
    type Target = Session;

    fn deref(&self) -> &Session {
        self.s
    }
}

impl Tok<'_> {
    /// `C_FindObjects`, never at the same time as a token object is created or destroyed.
    pub(crate) fn find(&self, template: &[Attribute]) -> std::result::Result<Vec<ObjectHandle>, CkError> {
        let _r = self.objects.read().unwrap_or_else(PoisonError::into_inner);
        self.s.find_objects(template)
    }

    /// Runs `f`, which creates or destroys token objects, with no search running.
    pub(crate) fn exclusive<T>(&self, f: impl FnOnce(&Session) -> T) -> T {
        let _w = self.objects.write().unwrap_or_else(PoisonError::into_inner);
        f(self.s)
    }

    /// Creates a token object with `f` under the object lock, retrying a few times on
    /// `CKR_GENERAL_ERROR`, which SoftHSM 2.6 occasionally returns for a token-object
    /// creation that races with other threads' calls on the same token.
    pub(crate) fn create_retrying<T>(
        &self,
        f: impl Fn(&Session) -> std::result::Result<T, CkError>,
    ) -> std::result::Result<T, CkError> {
        let mut attempt = 0;
        loop {
            match self.exclusive(&f) {
                Err(CkError::Pkcs11(RvError::GeneralError, _)) if attempt < 4 => {
                    attempt += 1;
                    tracing::debug!(attempt, "token object creation failed with CKR_GENERAL_ERROR; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(5 << attempt));
                }
                other => return other,
            }
        }
    }
}
