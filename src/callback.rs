//! What a callback is: a boxed closure that knows where it was scheduled, and the kinds of user
//! code the loop runs.
//!
//! ```
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! // The loop remembers this line as the callback's site: reports and the exception handler
//! // name it.
//! h.set_exception_handler(|ctx| assert_eq!(ctx.kind(), solo::CallbackKind::Soon));
//! h.call_soon(|| panic!("reported, not propagated"));
//! h.stop();
//! el.run_forever().unwrap();
//! ```
//!
//! This module depends on nothing else in the crate: the reactor, the debug mode and the
//! cross-thread queue all name callbacks, and the loop runs them.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{catch_unwind, AssertUnwindSafe, Location};

/// What kind of user code is running, for reports and the exception handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallbackKind {
    /// A `call_soon` callback.
    Soon,
    /// A `call_later` / `call_at` callback.
    Timer,
    /// An `add_reader` callback.
    Reader,
    /// An `add_writer` callback.
    Writer,
    /// A `call_soon_threadsafe` callback.
    Remote,
    /// A poll of a spawned task.
    Task,
    /// A poll of the future given to `run_until_complete`.
    Main,
    /// A signal handler.
    Signal,
    /// The loop itself, not user code: a failed wait for I/O, a waker that panicked.
    Loop,
}

impl fmt::Display for CallbackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CallbackKind::Soon => "callback",
            CallbackKind::Timer => "timer callback",
            CallbackKind::Reader => "reader callback",
            CallbackKind::Writer => "writer callback",
            CallbackKind::Remote => "threadsafe callback",
            CallbackKind::Task => "task",
            CallbackKind::Main => "main future",
            CallbackKind::Signal => "signal handler",
            CallbackKind::Loop => "event loop",
        })
    }
}

/// A one-shot callback that knows where it was scheduled and can name its type (for debug
/// reports): timers' and `call_soon_threadsafe`'s, boxed (a `call_soon` callback is a
/// [`SoonCallback`]). The site lives in the callback's own box, which is allocated anyway; the
/// type name is a constant in the vtable.
pub(crate) trait Callback {
    /// Runs the callback, catching a panic (one indirect call, with the panic guard inside).
    fn call(self: Box<Self>) -> Result<(), CallbackPanic>;
    fn site(&self) -> &'static Location<'static>;
    fn type_name(&self) -> &'static str;
}

/// A panic caught in a callback, and where the callback was scheduled.
pub(crate) struct CallbackPanic {
    pub(crate) payload: Box<dyn std::any::Any + Send>,
    pub(crate) site: &'static Location<'static>,
}

/// A closure and its scheduling site.
pub(crate) struct Sited<F> {
    pub(crate) site: &'static Location<'static>,
    pub(crate) f: F,
}

impl<F: FnOnce()> Callback for Sited<F> {
    fn call(self: Box<Self>) -> Result<(), CallbackPanic> {
        let Sited { site, f } = *self;
        catch_unwind(AssertUnwindSafe(f)).map_err(|payload| CallbackPanic { payload, site })
    }
    fn site(&self) -> &'static Location<'static> {
        self.site
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<F>()
    }
}

/// Room for a closure inside a [`SoonCallback`]: two words, the size of a closure that captures
/// two `Rc`s, a `Handle` and a counter, or a boxed closure's pointer.
type Room = MaybeUninit<[usize; 2]>;

/// A `call_soon` callback, kept in its ready-queue entry: a closure that fits in two words
/// (and needs no more than a word's alignment) is stored right there, without a heap
/// allocation; a larger one is boxed and its pointer stored instead.
///
/// Why: a `call_soon` chain ran one `malloc` and one `free` per callback, about a third of its
/// instructions, for closures that are mostly an `Rc` or two. The entry grows from 32 to 40
/// bytes; a queued small callback costs 40 bytes in all instead of 32 plus a 32-byte heap
/// chunk.
pub(crate) struct SoonCallback {
    vtable: &'static SoonVtable,
    site: &'static Location<'static>,
    /// The closure (if it fits) or a `*mut F` to its box; initialized until `call` or drop.
    room: Room,
    /// The closure may be anything `'static`, `Rc`s included: the entry stays on its thread.
    _not_send: PhantomData<*const ()>,
}

/// What a [`SoonCallback`] knows of its closure's type.
struct SoonVtable {
    /// Moves the closure out of the room and runs it, catching a panic.
    call: unsafe fn(*mut Room) -> Result<(), Box<dyn Any + Send>>,
    /// Drops the closure in the room.
    drop: unsafe fn(*mut Room),
    type_name: fn() -> &'static str,
}

/// Whether `F` is stored in the room itself.
const fn fits<F>() -> bool {
    size_of::<F>() <= size_of::<Room>() && align_of::<F>() <= align_of::<Room>()
}

impl SoonCallback {
    #[inline]
    pub(crate) fn new<F: FnOnce() + 'static>(site: &'static Location<'static>, f: F) -> Self {
        let mut room = Room::uninit();
        let vtable = if fits::<F>() {
            // SAFETY: the room is large and aligned enough for `F` (`fits`), and uninitialized.
            unsafe { room.as_mut_ptr().cast::<F>().write(f) };
            inline_vtable::<F>()
        } else {
            let boxed = Box::into_raw(Box::new(f));
            // SAFETY: the room is large and aligned enough for a pointer.
            unsafe { room.as_mut_ptr().cast::<*mut F>().write(boxed) };
            boxed_vtable::<F>()
        };
        SoonCallback {
            vtable,
            site,
            room,
            _not_send: PhantomData,
        }
    }

    /// Runs the callback, catching a panic.
    #[inline]
    pub(crate) fn call(self) -> Result<(), CallbackPanic> {
        let mut this = ManuallyDrop::new(self);
        let site = this.site;
        // SAFETY: the room holds the closure `vtable` was made for; `ManuallyDrop` keeps our
        // drop from dropping it again after `call` moved it out.
        unsafe { (this.vtable.call)(&mut this.room) }
            .map_err(|payload| CallbackPanic { payload, site })
    }

    pub(crate) fn site(&self) -> &'static Location<'static> {
        self.site
    }

    pub(crate) fn type_name(&self) -> &'static str {
        (self.vtable.type_name)()
    }
}

impl Drop for SoonCallback {
    fn drop(&mut self) {
        // SAFETY: not called yet (`call` consumes the callback without this drop), so the room
        // still holds the closure `vtable` was made for.
        unsafe { (self.vtable.drop)(&mut self.room) }
    }
}

fn inline_vtable<F: FnOnce() + 'static>() -> &'static SoonVtable {
    &SoonVtable {
        call: call_inline::<F>,
        drop: drop_inline::<F>,
        type_name: std::any::type_name::<F>,
    }
}

fn boxed_vtable<F: FnOnce() + 'static>() -> &'static SoonVtable {
    &SoonVtable {
        call: call_boxed::<F>,
        drop: drop_boxed::<F>,
        type_name: std::any::type_name::<F>,
    }
}

/// # Safety
/// `room` holds an `F`, which the caller will not use again.
unsafe fn call_inline<F: FnOnce()>(room: *mut Room) -> Result<(), Box<dyn Any + Send>> {
    // SAFETY: (caller) the room holds an `F`, read once.
    let f = unsafe { room.cast::<F>().read() };
    catch_unwind(AssertUnwindSafe(f))
}

/// # Safety
/// `room` holds an `F`, which the caller will not use again.
unsafe fn drop_inline<F>(room: *mut Room) {
    // SAFETY: (caller) the room holds an `F`, dropped once.
    unsafe { room.cast::<F>().drop_in_place() }
}

/// # Safety
/// `room` holds a `*mut F` from `Box::into_raw`, which the caller will not use again.
unsafe fn call_boxed<F: FnOnce()>(room: *mut Room) -> Result<(), Box<dyn Any + Send>> {
    // SAFETY: (caller) the pointer came from `Box::into_raw` and is taken back once.
    let f = unsafe { Box::from_raw(room.cast::<*mut F>().read()) };
    catch_unwind(AssertUnwindSafe(*f))
}

/// # Safety
/// `room` holds a `*mut F` from `Box::into_raw`, which the caller will not use again.
unsafe fn drop_boxed<F>(room: *mut Room) {
    // SAFETY: (caller) the pointer came from `Box::into_raw` and is taken back once.
    drop(unsafe { Box::from_raw(room.cast::<*mut F>().read()) });
}

impl fmt::Debug for SoonCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoonCallback")
            .field("site", &self.site)
            .field("type", &self.type_name())
            .finish()
    }
}

/// The unsafe paths of `SoonCallback` (run under Miri in CI: `miri_` prefix): inline and boxed
/// closures, called, dropped unrun, panicking in the call and in the drop.
#[cfg(test)]
mod tests {
    use super::{fits, SoonCallback};
    use std::cell::Cell;
    use std::panic::{catch_unwind, AssertUnwindSafe, Location};
    use std::rc::Rc;

    /// Counts its drops.
    struct Tally(Rc<Cell<u32>>);

    impl Drop for Tally {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    fn soon<F: FnOnce() + 'static>(f: F) -> SoonCallback {
        SoonCallback::new(Location::caller(), f)
    }

    #[test]
    fn miri_inline_and_boxed_closures_run_once_and_drop_once() {
        let ran = Rc::new(Cell::new(0u32));
        let drops = Rc::new(Cell::new(0u32));
        // Two words: inline. Four words and an over-aligned one: boxed. Zero-sized: inline.
        let (r, t) = (ran.clone(), Tally(drops.clone()));
        let small = move || {
            let _t = &t;
            r.set(r.get() + 1);
        };
        assert!(fits_of(&small));
        let (r, t, pad) = (ran.clone(), Tally(drops.clone()), [7u64; 2]);
        let big = move || {
            let _t = &t;
            r.set(r.get() + pad[0] as u32 + pad[1] as u32);
        };
        assert!(!fits_of(&big));
        #[repr(align(16))]
        struct Aligned(u8);
        let (r, a) = (ran.clone(), Aligned(1));
        let aligned = move || {
            let a = a; // the whole value, not just its field
            r.set(r.get() + u32::from(a.0))
        };
        assert!(!fits_of(&aligned));
        for cb in [soon(small), soon(big), soon(aligned), soon(|| {})] {
            assert!(cb.type_name().contains("closure"), "{cb:?}");
            cb.call().ok().expect("no panic");
        }
        assert_eq!((ran.get(), drops.get()), (1 + 14 + 1, 2));
        // Dropped unrun: each closure (and what it captured) exactly once.
        let (t1, t2) = (Tally(drops.clone()), Tally(drops.clone()));
        drop(soon(move || drop(t1)));
        let pad = [0u64; 4];
        drop(soon(move || drop((t2, pad))));
        assert_eq!(drops.get(), 4);
    }

    /// Whether a value of this type is stored inline.
    fn fits_of<T>(_: &T) -> bool {
        fits::<T>()
    }

    #[test]
    fn miri_panics_in_the_call_and_in_the_drop_are_caught_or_propagate_once() {
        let drops = Rc::new(Cell::new(0u32));
        for big in [false, true] {
            let t = Tally(drops.clone());
            let pad = [big as u64; 3];
            let cb = if big {
                soon(move || {
                    let _t = (&t, pad);
                    panic!("in the callback")
                })
            } else {
                soon(move || {
                    let _t = &t;
                    panic!("in the callback")
                })
            };
            let Err(err) = cb.call() else {
                panic!("the panic comes back")
            };
            assert_eq!(
                crate::error::panic_message(&*err.payload),
                "in the callback"
            );
            assert_eq!(err.site.file(), file!());
        }
        assert_eq!(drops.get(), 2, "the captures were dropped while unwinding");
        // A destructor that panics when the callback is dropped unrun.
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("in the destructor")
            }
        }
        for big in [false, true] {
            let b = Bomb;
            let pad = [0u64; 3];
            let cb = if big {
                soon(move || drop((b, pad)))
            } else {
                soon(move || drop(b))
            };
            assert!(catch_unwind(AssertUnwindSafe(move || drop(cb))).is_err());
        }
    }

    /// Through the loop: small and large callbacks run in order, a cancelled one is dropped
    /// unrun, a panicking one is reported and the loop goes on, and the loop's drop drops the
    /// ones still queued.
    #[test]
    fn miri_call_soon_through_the_loop() {
        let el = crate::EventLoop::new().unwrap();
        let h = el.handle();
        let reported = Rc::new(Cell::new(0u32));
        let r = reported.clone();
        h.set_exception_handler(move |_| r.set(r.get() + 1));
        let log = Rc::new(std::cell::RefCell::new(Vec::new()));
        let drops = Rc::new(Cell::new(0u32));
        let (l, t) = (log.clone(), Tally(drops.clone()));
        h.call_soon(move || {
            let _t = &t;
            l.borrow_mut().push(1)
        });
        let (l, t) = (log.clone(), Tally(drops.clone()));
        h.call_soon(move || drop((t, 0u8))).cancel();
        let (l2, pad) = (log.clone(), [2u64; 3]);
        h.call_soon(move || l2.borrow_mut().push(pad[2]));
        h.call_soon(|| panic!("reported"));
        h.call_soon(move || l.borrow_mut().push(3));
        el.stop();
        el.run_forever().unwrap();
        assert_eq!(*log.borrow(), [1, 2, 3]);
        assert_eq!((reported.get(), drops.get()), (1, 2));
        let t = Tally(drops.clone());
        h.call_soon(move || drop(t));
        drop(h);
        drop(el);
        assert_eq!(drops.get(), 3, "dropped with the loop");
    }
}
