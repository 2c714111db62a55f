//! [`select!`](crate::select): a macro over the runtime in `select.rs`.

/// Waits on several channel operations at once and runs the branch of the
/// one that completes first.
///
/// ```text
/// weft::select! {
///     recv(rx) -> msg => body,          // msg: Result<T, RecvError>
///     send(tx, value) -> res => body,   // res: Result<(), SendError<T>>
///     timeout(duration) => body,        // optional: give up after duration
///     default => body,                  // optional: do not wait at all
/// }
/// ```
///
/// - Exactly one branch runs. A receive from a disconnected channel and a
///   send to one are ready too (with an error), as in crossbeam.
/// - Among branches that are ready at once, the choice is random, so no
///   channel starves another.
/// - With neither `timeout` nor `default`, the select waits as long as
///   it takes (it parks the fiber, or blocks a plain thread).
/// - Every `send` value is evaluated before the select starts (as in Go);
///   the values of the sends that did not happen are dropped.
/// - The whole select is an expression: its value is the branch's.
/// - Up to 32 channel branches. A branch body is a block, or an
///   expression followed by a comma.
///
/// ```
/// use std::time::Duration;
///
/// let (tx1, rx1) = weft::chan::unbounded::<u32>();
/// let (tx2, rx2) = weft::chan::bounded::<&str>(0);
/// tx1.send(7).unwrap();
/// let got = weft::select! {
///     recv(rx1) -> n => format!("number {}", n.unwrap()),
///     recv(rx2) -> s => format!("string {}", s.unwrap()),
///     timeout(Duration::from_secs(1)) => "nothing".to_owned(),
/// };
/// assert_eq!(got, "number 7");
///
/// // Nothing is ready: the default branch runs at once.
/// let sent = weft::select! {
///     send(tx2, "hi") -> res => res.is_ok(),
///     default => false,
/// };
/// assert!(!sent);
/// # drop(tx1);
/// ```
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__select_parse!(
            @branches ()
            @mode ()
            @ids (__w0 __w1 __w2 __w3 __w4 __w5 __w6 __w7 __w8 __w9 __w10 __w11 __w12 __w13 __w14 __w15 __w16 __w17 __w18 __w19 __w20 __w21 __w22 __w23 __w24 __w25 __w26 __w27 __w28 __w29 __w30 __w31 )
            @rest ($($tokens)*)
        )
    };
}

/// The parser of [`select!`]: one branch at a time into a canonical list.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_parse {
    // All parsed.
    (@branches ($($b:tt)*) @mode () @ids $ids:tt @rest ()) => {
        $crate::__select_emit!(@branches ($($b)*)
            @mode [$crate::chan::select::Mode::Block]
            @fallback [::core::unreachable!("a blocking select returned without a branch")])
    };
    (@branches ($($b:tt)*) @mode (default [$($body:tt)*]) @ids $ids:tt @rest ()) => {
        $crate::__select_emit!(@branches ($($b)*)
            @mode [$crate::chan::select::Mode::NonBlocking]
            @fallback [$($body)*])
    };
    (@branches ($($b:tt)*) @mode (timeout [$($d:tt)*] [$($body:tt)*]) @ids $ids:tt @rest ()) => {
        $crate::__select_emit!(@branches ($($b)*)
            @mode [$crate::chan::select::Mode::timeout($($d)*)]
            @fallback [$($body)*])
    };

    // recv(rx) -> pat => body
    (@branches ($($b:tt)*) @mode $m:tt @ids ($id:ident $($ids:ident)*)
        @rest (recv($rx:expr) -> $p:pat => $body:block , $($rest:tt)*)) => {
        $crate::__select_parse!(@branches ($($b)* ($id [$crate::chan::select::RecvOp::new(&$rx)] [$p] [$body]))
            @mode $m @ids ($($ids)*) @rest ($($rest)*))
    };
    (@branches ($($b:tt)*) @mode $m:tt @ids ($id:ident $($ids:ident)*)
        @rest (recv($rx:expr) -> $p:pat => $body:block $($rest:tt)*)) => {
        $crate::__select_parse!(@branches ($($b)* ($id [$crate::chan::select::RecvOp::new(&$rx)] [$p] [$body]))
            @mode $m @ids ($($ids)*) @rest ($($rest)*))
    };
    (@branches ($($b:tt)*) @mode $m:tt @ids ($id:ident $($ids:ident)*)
        @rest (recv($rx:expr) -> $p:pat => $body:expr , $($rest:tt)*)) => {
        $crate::__select_parse!(@branches ($($b)* ($id [$crate::chan::select::RecvOp::new(&$rx)] [$p] [$body]))
            @mode $m @ids ($($ids)*) @rest ($($rest)*))
    };
    (@branches ($($b:tt)*) @mode $m:tt @ids ($id:ident $($ids:ident)*)
        @rest (recv($rx:expr) -> $p:pat => $body:expr)) => {
        $crate::__select_parse!(@branches ($($b)* ($id [$crate::chan::select::RecvOp::new(&$rx)] [$p] [$body]))
            @mode $m @ids ($($ids)*) @rest ())
    };

    // send(tx, value) -> pat => body
    (@branches ($($b:tt)*) @mode $m:tt @ids ($id:ident $($ids:ident)*)
        @rest (send($tx:expr, $v:expr) -> $p:pat => $body:block , $($rest:tt)*)) => {
        $crate::__select_parse!(@branches ($($b)* ($id [$crate::chan::select::SendOp::new(&$tx, $v)] [$p] [$body]))
            @mode $m @ids ($($ids)*) @rest ($($rest)*))
    };
    (@branches ($($b:tt)*) @mode $m:tt @ids ($id:ident $($ids:ident)*)
        @rest (send($tx:expr, $v:expr) -> $p:pat => $body:block $($rest:tt)*)) => {
        $crate::__select_parse!(@branches ($($b)* ($id [$crate::chan::select::SendOp::new(&$tx, $v)] [$p] [$body]))
            @mode $m @ids ($($ids)*) @rest ($($rest)*))
    };
    (@branches ($($b:tt)*) @mode $m:tt @ids ($id:ident $($ids:ident)*)
        @rest (send($tx:expr, $v:expr) -> $p:pat => $body:expr , $($rest:tt)*)) => {
        $crate::__select_parse!(@branches ($($b)* ($id [$crate::chan::select::SendOp::new(&$tx, $v)] [$p] [$body]))
            @mode $m @ids ($($ids)*) @rest ($($rest)*))
    };
    (@branches ($($b:tt)*) @mode $m:tt @ids ($id:ident $($ids:ident)*)
        @rest (send($tx:expr, $v:expr) -> $p:pat => $body:expr)) => {
        $crate::__select_parse!(@branches ($($b)* ($id [$crate::chan::select::SendOp::new(&$tx, $v)] [$p] [$body]))
            @mode $m @ids ($($ids)*) @rest ())
    };

    // default => body
    (@branches $b:tt @mode () @ids $ids:tt @rest (default => $body:block , $($rest:tt)*)) => {
        $crate::__select_parse!(@branches $b @mode (default [$body]) @ids $ids @rest ($($rest)*))
    };
    (@branches $b:tt @mode () @ids $ids:tt @rest (default => $body:block $($rest:tt)*)) => {
        $crate::__select_parse!(@branches $b @mode (default [$body]) @ids $ids @rest ($($rest)*))
    };
    (@branches $b:tt @mode () @ids $ids:tt @rest (default => $body:expr , $($rest:tt)*)) => {
        $crate::__select_parse!(@branches $b @mode (default [$body]) @ids $ids @rest ($($rest)*))
    };
    (@branches $b:tt @mode () @ids $ids:tt @rest (default => $body:expr)) => {
        $crate::__select_parse!(@branches $b @mode (default [$body]) @ids $ids @rest ())
    };

    // timeout(duration) => body
    (@branches $b:tt @mode () @ids $ids:tt @rest (timeout($d:expr) => $body:block , $($rest:tt)*)) => {
        $crate::__select_parse!(@branches $b @mode (timeout [$d] [$body]) @ids $ids @rest ($($rest)*))
    };
    (@branches $b:tt @mode () @ids $ids:tt @rest (timeout($d:expr) => $body:block $($rest:tt)*)) => {
        $crate::__select_parse!(@branches $b @mode (timeout [$d] [$body]) @ids $ids @rest ($($rest)*))
    };
    (@branches $b:tt @mode () @ids $ids:tt @rest (timeout($d:expr) => $body:expr , $($rest:tt)*)) => {
        $crate::__select_parse!(@branches $b @mode (timeout [$d] [$body]) @ids $ids @rest ($($rest)*))
    };
    (@branches $b:tt @mode () @ids $ids:tt @rest (timeout($d:expr) => $body:expr)) => {
        $crate::__select_parse!(@branches $b @mode (timeout [$d] [$body]) @ids $ids @rest ())
    };

    // Errors.
    (@branches $b:tt @mode ($($m:tt)+) @ids $ids:tt @rest (default $($rest:tt)*)) => {
        ::core::compile_error!("weft::select!: at most one `default` or `timeout` branch")
    };
    (@branches $b:tt @mode ($($m:tt)+) @ids $ids:tt @rest (timeout $($rest:tt)*)) => {
        ::core::compile_error!("weft::select!: at most one `default` or `timeout` branch")
    };
    (@branches $b:tt @mode $m:tt @ids () @rest ($($rest:tt)+)) => {
        ::core::compile_error!("weft::select!: at most 32 channel branches")
    };
    (@branches $b:tt @mode $m:tt @ids $ids:tt @rest ($($rest:tt)+)) => {
        ::core::compile_error!(
            "weft::select!: expected `recv(rx) -> pat => body`, `send(tx, value) -> pat => body`,              `timeout(duration) => body` or `default => body`"
        )
    };
}

/// The code generator of [`select!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __select_emit {
    (@branches ($( ($id:ident [$($ctor:tt)*] [$($p:tt)*] [$($body:tt)*]) )*)
     @mode [$($mode:tt)*] @fallback [$($fallback:tt)*]) => {{
        $( let $id = $($ctor)*; )*
        let _ = $crate::chan::select::select(
            &[ $( &$id as &dyn $crate::chan::select::Op ),* ],
            $($mode)*,
        );
        $(
            if $id.is_chosen() {
                let $($p)* = $id.into_result();
                $($body)*
            } else
        )* {
            $($fallback)*
        }
    }};
}
