//! Linux-PAM behind a safe API: the library loaded when a rule first needs it, a handle that
//! ends itself, and a conversation that hands each message to a Rust [`Converse`]
//! implementation.
//!
//! libpam is not linked: it is loaded with `dlopen` by [`Library::get`] the first time a rule
//! with `authenticate = true` asks for it, so that every other run maps the C library alone
//! (libpam brings libaudit and libcap-ng with it, and the dynamic loader would map and relocate
//! all three before `main` on every run). The loader looks for `libpam.so.0` by its soname, as
//! it would for a linked library: for a setuid start glibc ignores `LD_LIBRARY_PATH` and
//! searches only the system's directories (`ld.so.cache`, then the defaults), and jitrun's
//! environment is already empty by then. The library is never unloaded (PAM modules it loads
//! may leave callbacks behind).
//!
//! The declarations below are those of `<security/pam_appl.h>` (Linux-PAM's `_pam_types.h`),
//! written out by hand: no headers are needed to build jitrun, only the shared library
//! (Debian's `libpam0g`) to run a rule that authenticates.

use libc::{c_char, c_int, c_void};
use std::ffi::{CStr, CString};
use std::ptr;
use std::sync::OnceLock;

pub const PAM_SUCCESS: c_int = 0;
pub const PAM_PERM_DENIED: c_int = 6;
pub const PAM_AUTH_ERR: c_int = 7;
pub const PAM_USER_UNKNOWN: c_int = 10;
pub const PAM_MAXTRIES: c_int = 11;
pub const PAM_NEW_AUTHTOK_REQD: c_int = 12;
pub const PAM_ACCT_EXPIRED: c_int = 13;
pub const PAM_CONV_ERR: c_int = 19;
pub const PAM_ABORT: c_int = 26;

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

const PAM_USER: c_int = 2;
const PAM_TTY: c_int = 3;
const PAM_RUSER: c_int = 8;

const PAM_ESTABLISH_CRED: c_int = 0x0002;
const PAM_DELETE_CRED: c_int = 0x0004;
const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;
/// Linux-PAM's `PAM_MAX_NUM_MSG`: a conversation with more messages is refused.
const MAX_MESSAGES: c_int = 32;

/// The shared library loaded for PAM (Linux-PAM's soname since 0.99).
pub const LIBRARY: &str = "libpam.so.0";

/// `pam_handle_t`: opaque.
#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

/// `struct pam_message`.
#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

/// `struct pam_response`.
#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn =
    extern "C" fn(c_int, *mut *mut PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;

/// `struct pam_conv`.
#[repr(C)]
struct PamConversation {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

type StartFn = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    *const PamConversation,
    *mut *mut PamHandle,
) -> c_int;
type EndFn = unsafe extern "C" fn(*mut PamHandle, c_int) -> c_int;
type SetItemFn = unsafe extern "C" fn(*mut PamHandle, c_int, *const c_void) -> c_int;
type FlagsFn = unsafe extern "C" fn(*mut PamHandle, c_int) -> c_int;
type StrerrorFn = unsafe extern "C" fn(*mut PamHandle, c_int) -> *const c_char;

/// The functions of a loaded libpam.
pub struct Library {
    start: StartFn,
    end: EndFn,
    set_item: SetItemFn,
    authenticate: FlagsFn,
    acct_mgmt: FlagsFn,
    setcred: FlagsFn,
    open_session: FlagsFn,
    close_session: FlagsFn,
    strerror: StrerrorFn,
}

/// Why libpam could not be loaded.
#[derive(Debug, Clone)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

static LOADED: OnceLock<Result<Library, LoadError>> = OnceLock::new();

/// The C library's last `dlerror()` text.
fn dl_error() -> String {
    // SAFETY: dlerror takes no arguments; jitrun is single-threaded, so no other dl* call
    // changes the message it points to before it is copied below.
    let p = unsafe { libc::dlerror() };
    if p.is_null() {
        return "unknown error".into();
    }
    // SAFETY: non-NULL: a NUL-terminated string owned by the C library, copied at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// `dlsym(handle, name)` as a function pointer of type `F`.
///
/// # Safety
///
/// `handle` is a live handle from `dlopen`, and `F` is a function-pointer type with exactly
/// the C signature of the symbol `name`.
unsafe fn symbol<F: Copy>(handle: *mut c_void, name: &CStr) -> Result<F, LoadError> {
    assert_eq!(size_of::<F>(), size_of::<*mut c_void>());
    // SAFETY: `handle` is live (the caller's condition) and `name` is NUL-terminated.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if p.is_null() {
        return Err(LoadError(format!(
            "{LIBRARY} has no {}: {}",
            name.to_string_lossy(),
            dl_error()
        )));
    }
    // SAFETY: `p` is the non-NULL address of the function `name`, and `F` is a function
    // pointer of the same size with its C signature (the caller's condition).
    Ok(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) })
}

impl Library {
    /// libpam, loaded on first use (`dlopen` with every symbol bound at once). Later calls
    /// return the same library, or the same error.
    pub fn get() -> Result<&'static Library, LoadError> {
        LOADED
            .get_or_init(Library::load)
            .as_ref()
            .map_err(Clone::clone)
    }

    fn load() -> Result<Library, LoadError> {
        let name = CString::new(LIBRARY).expect("no NUL");
        // SAFETY: `name` is NUL-terminated; libpam's initialisers (and those of what it
        // links) are the C library's ordinary ones, run in this single-threaded process.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(LoadError(dl_error()));
        }
        // Below, `handle` was just returned by dlopen and is never closed, and each type is
        // the function's prototype in <security/pam_appl.h>.
        Ok(Library {
            // SAFETY: as said above; `int pam_start(const char *, const char *, const struct pam_conv *, pam_handle_t **)`.
            start: unsafe { symbol::<StartFn>(handle, c"pam_start") }?,
            // SAFETY: as said above; `int pam_end(pam_handle_t *, int)`.
            end: unsafe { symbol::<EndFn>(handle, c"pam_end") }?,
            // SAFETY: as said above; `int pam_set_item(pam_handle_t *, int, const void *)`.
            set_item: unsafe { symbol::<SetItemFn>(handle, c"pam_set_item") }?,
            // SAFETY: as said above; `int pam_authenticate(pam_handle_t *, int)`.
            authenticate: unsafe { symbol::<FlagsFn>(handle, c"pam_authenticate") }?,
            // SAFETY: as said above; `int pam_acct_mgmt(pam_handle_t *, int)`.
            acct_mgmt: unsafe { symbol::<FlagsFn>(handle, c"pam_acct_mgmt") }?,
            // SAFETY: as said above; `int pam_setcred(pam_handle_t *, int)`.
            setcred: unsafe { symbol::<FlagsFn>(handle, c"pam_setcred") }?,
            // SAFETY: as said above; `int pam_open_session(pam_handle_t *, int)`.
            open_session: unsafe { symbol::<FlagsFn>(handle, c"pam_open_session") }?,
            // SAFETY: as said above; `int pam_close_session(pam_handle_t *, int)`.
            close_session: unsafe { symbol::<FlagsFn>(handle, c"pam_close_session") }?,
            // SAFETY: as said above; `const char *pam_strerror(pam_handle_t *, int)`.
            strerror: unsafe { symbol::<StrerrorFn>(handle, c"pam_strerror") }?,
        })
    }
}

/// The person's side of a PAM conversation.
pub trait Converse {
    /// Ask `text`; `echo` false for secrets. `None` when there is no answer (no terminal,
    /// end of input, time-out): the conversation then fails and PAM refuses.
    fn prompt(&mut self, text: &str, echo: bool) -> Option<Secret>;
    /// Show a module's message (`error` for PAM_ERROR_MSG).
    fn show(&mut self, text: &str, error: bool);
}

/// An answer, wiped from memory when dropped.
pub struct Secret(Vec<u8>);

impl Secret {
    /// An empty answer with room for `capacity` bytes, so that it never reallocates (a
    /// reallocation would leave an unwiped copy behind).
    pub fn with_capacity(capacity: usize) -> Secret {
        Secret(Vec::with_capacity(capacity))
    }

    /// Append a byte; false (and nothing added) once the capacity is reached.
    pub fn push(&mut self, b: u8) -> bool {
        if self.0.len() == self.0.capacity() {
            return false;
        }
        self.0.push(b);
        true
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference into our own buffer; a
            // volatile write keeps the compiler from eliding the wipe of a dying buffer.
            unsafe { ptr::write_volatile(b, 0) };
        }
    }
}

/// What PAM said: the return code and its text.
#[derive(Debug, Clone)]
pub struct PamError {
    pub code: c_int,
    pub text: String,
}

impl std::fmt::Display for PamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (PAM code {})", self.text, self.code)
    }
}

/// The conversation data PAM hands back to [`converse`]: a pointer to this box.
struct ConvData {
    converse: Box<dyn Converse>,
}

/// A PAM transaction (`pam_start` … `pam_end`).
pub struct Pam {
    lib: &'static Library,
    handle: *mut PamHandle,
    last: c_int,
    // Both must stay at a fixed address for as long as the handle lives: PAM keeps pointers.
    _conv: Box<PamConversation>,
    _data: Box<ConvData>,
    session_open: bool,
    cred_established: bool,
}

impl Pam {
    /// `pam_start(service, user, conv)` with a loaded libpam ([`Library::get`]).
    pub fn start(
        lib: &'static Library,
        service: &str,
        user: &str,
        converse: Box<dyn Converse>,
    ) -> Result<Pam, PamError> {
        let service_c = CString::new(service).map_err(|_| PamError {
            code: PAM_ABORT,
            text: "NUL in the PAM service name".into(),
        })?;
        let user_c = CString::new(user).map_err(|_| PamError {
            code: PAM_ABORT,
            text: "NUL in the user name".into(),
        })?;
        let mut data = Box::new(ConvData { converse });
        let conv = Box::new(PamConversation {
            conv: Some(converse_trampoline),
            appdata_ptr: (&mut *data as *mut ConvData).cast::<c_void>(),
        });
        let mut handle: *mut PamHandle = ptr::null_mut();
        // SAFETY: both strings are NUL-terminated and outlive the call (PAM copies them);
        // `conv` points to a boxed PamConversation whose function and data pointer stay valid
        // until pam_end (the boxes are owned by the returned Pam, which calls pam_end on drop);
        // `handle` is a valid out-pointer.
        let rc = unsafe {
            (lib.start)(
                service_c.as_ptr(),
                user_c.as_ptr(),
                &*conv as *const PamConversation,
                &mut handle,
            )
        };
        if rc != PAM_SUCCESS || handle.is_null() {
            return Err(PamError {
                code: rc,
                text: format!("pam_start failed for service {service:?}"),
            });
        }
        Ok(Pam {
            lib,
            handle,
            last: PAM_SUCCESS,
            _conv: conv,
            _data: data,
            session_open: false,
            cred_established: false,
        })
    }

    fn result(&mut self, rc: c_int) -> Result<(), PamError> {
        self.last = rc;
        if rc == PAM_SUCCESS {
            Ok(())
        } else {
            Err(PamError {
                code: rc,
                text: self.strerror(rc),
            })
        }
    }

    fn strerror(&mut self, rc: c_int) -> String {
        // SAFETY: the handle is live; pam_strerror returns a pointer to a static string (or
        // NULL), which we copy at once.
        let p = unsafe { (self.lib.strerror)(self.handle, rc) };
        if p.is_null() {
            return format!("PAM error {rc}");
        }
        // SAFETY: non-NULL pointer to a NUL-terminated static string owned by libpam.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    fn set_item(&mut self, item: c_int, value: &str) -> Result<(), PamError> {
        let v = CString::new(value).map_err(|_| PamError {
            code: PAM_ABORT,
            text: "NUL in a PAM item".into(),
        })?;
        // SAFETY: the handle is live; string items are copied by pam_set_item.
        let rc = unsafe { (self.lib.set_item)(self.handle, item, v.as_ptr().cast::<c_void>()) };
        self.result(rc)
    }

    /// PAM_TTY (e.g. `/dev/pts/3`) and PAM_RUSER (the invoking user).
    pub fn set_requester(&mut self, tty: Option<&str>, ruser: &str) -> Result<(), PamError> {
        if let Some(t) = tty {
            self.set_item(PAM_TTY, t)?;
        }
        self.set_item(PAM_RUSER, ruser)
    }

    /// PAM_USER: the session is opened for the user the command runs as (as sudo does).
    pub fn set_user(&mut self, user: &str) -> Result<(), PamError> {
        self.set_item(PAM_USER, user)
    }

    /// `pam_authenticate` (empty passwords refused).
    pub fn authenticate(&mut self) -> Result<(), PamError> {
        // SAFETY: the handle is live; the conversation data it points to is owned by self.
        let rc = unsafe { (self.lib.authenticate)(self.handle, PAM_DISALLOW_NULL_AUTHTOK) };
        self.result(rc)
    }

    /// `pam_acct_mgmt`: expired accounts, expired passwords, access rules.
    pub fn account(&mut self) -> Result<(), PamError> {
        // SAFETY: as above.
        let rc = unsafe { (self.lib.acct_mgmt)(self.handle, PAM_DISALLOW_NULL_AUTHTOK) };
        self.result(rc)
    }

    /// `pam_setcred(ESTABLISH)` then `pam_open_session`.
    pub fn open_session(&mut self) -> Result<(), PamError> {
        // SAFETY: as above.
        let rc = unsafe { (self.lib.setcred)(self.handle, PAM_ESTABLISH_CRED) };
        self.result(rc)?;
        self.cred_established = true;
        // SAFETY: as above.
        let rc = unsafe { (self.lib.open_session)(self.handle, 0) };
        self.result(rc)?;
        self.session_open = true;
        Ok(())
    }

    /// `pam_close_session` then `pam_setcred(DELETE)`, for what was opened.
    pub fn close_session(&mut self) -> Result<(), PamError> {
        let mut first_err = Ok(());
        if std::mem::take(&mut self.session_open) {
            // SAFETY: as above.
            let rc = unsafe { (self.lib.close_session)(self.handle, 0) };
            first_err = self.result(rc);
        }
        if std::mem::take(&mut self.cred_established) {
            // SAFETY: as above.
            let rc = unsafe { (self.lib.setcred)(self.handle, PAM_DELETE_CRED) };
            let r = self.result(rc);
            if first_err.is_ok() {
                first_err = r;
            }
        }
        first_err
    }
}

impl Drop for Pam {
    fn drop(&mut self) {
        let _ = self.close_session();
        // SAFETY: the handle came from a successful pam_start and is ended exactly once; the
        // conversation boxes are dropped only after this call returns.
        unsafe { (self.lib.end)(self.handle, self.last) };
    }
}

extern "C" fn converse_trampoline(
    num_msg: c_int,
    msg: *mut *mut PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if num_msg <= 0
        || num_msg > MAX_MESSAGES
        || msg.is_null()
        || resp.is_null()
        || appdata.is_null()
    {
        return PAM_CONV_ERR;
    }
    let n = num_msg as usize;
    // SAFETY: `appdata` is the pointer to the ConvData box given to pam_start, alive until
    // pam_end; PAM calls the conversation only from inside our own pam_* calls, which hold
    // `&mut Pam`, so no other reference to the data exists meanwhile.
    let data = unsafe { &mut *appdata.cast::<ConvData>() };
    // SAFETY: calloc of n zeroed PamResponse structs (a valid all-NULL state); PAM frees the
    // array and each `resp` string with free(), so both come from the C allocator.
    let replies =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if replies.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: Linux-PAM passes `msg` as an array of `num_msg` pointers to messages, each valid
    // for the duration of this call.
    let messages = unsafe { std::slice::from_raw_parts(msg, n) };
    for (i, &m) in messages.iter().enumerate() {
        if m.is_null() {
            free_replies(replies, n);
            return PAM_CONV_ERR;
        }
        // SAFETY: `m` is a valid message pointer (above), not written by anyone during the call.
        let m = unsafe { &*m };
        let (style, text_ptr) = (m.msg_style, m.msg);
        let text = if text_ptr.is_null() {
            String::new()
        } else {
            // SAFETY: the message text is a NUL-terminated string owned by the module.
            unsafe { CStr::from_ptr(text_ptr) }
                .to_string_lossy()
                .into_owned()
        };
        match style {
            PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON => {
                let Some(answer) = data.converse.prompt(&text, style == PAM_PROMPT_ECHO_ON) else {
                    free_replies(replies, n);
                    return PAM_CONV_ERR;
                };
                let Some(c) = c_string_copy(&answer.0) else {
                    free_replies(replies, n);
                    return PAM_CONV_ERR;
                };
                // SAFETY: `replies` has n entries from calloc, nobody else refers to them; i < n.
                let reply = unsafe { &mut *replies.wrapping_add(i) };
                reply.resp = c;
            }
            PAM_ERROR_MSG => data.converse.show(&text, true),
            PAM_TEXT_INFO => data.converse.show(&text, false),
            _ => {
                free_replies(replies, n);
                return PAM_CONV_ERR;
            }
        }
    }
    // SAFETY: `resp` is PAM's valid out-pointer; ownership of `replies` passes to PAM.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// A malloc'd NUL-terminated copy (PAM frees it); `None` if it contains NUL or malloc fails.
fn c_string_copy(bytes: &[u8]) -> Option<*mut c_char> {
    if bytes.contains(&0) {
        return None;
    }
    // SAFETY: allocating len+1 bytes; checked for NULL below.
    let p = unsafe { libc::malloc(bytes.len() + 1) }.cast::<u8>();
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` was just allocated with room for len+1 bytes, owned by us alone.
    let copy = unsafe { std::slice::from_raw_parts_mut(p, bytes.len() + 1) };
    copy[..bytes.len()].copy_from_slice(bytes);
    copy[bytes.len()] = 0;
    Some(p.cast::<c_char>())
}

/// Wipe and free what a failed conversation had allocated.
fn free_replies(replies: *mut PamResponse, n: usize) {
    // SAFETY: `replies` has n entries from calloc, not yet handed to PAM.
    let entries = unsafe { std::slice::from_raw_parts(replies, n) };
    for r in entries.iter().map(|e| e.resp).filter(|r| !r.is_null()) {
        // SAFETY: each non-NULL `resp` is our malloc'd, NUL-terminated copy.
        let len = unsafe { libc::strlen(r) };
        // SAFETY: `r` is writable for `len` bytes (above); the answer is wiped before it is freed.
        unsafe { ptr::write_bytes(r, 0, len) };
        // SAFETY: malloc'd by `c_string_copy`, freed once.
        unsafe { libc::free(r.cast::<c_void>()) };
    }
    // SAFETY: allocated by calloc above and not handed to PAM.
    unsafe { libc::free(replies.cast::<c_void>()) };
}
