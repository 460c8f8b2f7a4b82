// A bottom sheet as a modal <dialog>: the browser moves focus into it, keeps it there, makes the page behind it
// inert and closes it on Escape; a tap on the backdrop closes it too, and focus goes back where it was.
import type { ComponentChildren } from 'preact'
import { useEffect, useRef } from 'preact/hooks'

export function Sheet(props: {
  labelledBy: string
  onClose: () => void
  onSubmit: (event: Event) => void
  children: ComponentChildren
}) {
  const dialog = useRef<HTMLDialogElement>(null)
  useEffect(() => {
    const opener = document.activeElement as HTMLElement | null
    if (!dialog.current?.open) dialog.current?.showModal()
    return () => opener?.focus()
  }, [])
  return (
    <dialog
      ref={dialog}
      class="sheet"
      aria-labelledby={props.labelledBy}
      onCancel={(event) => {
        event.preventDefault()
        props.onClose()
      }}
      onClick={(event) => event.target === event.currentTarget && props.onClose()}
    >
      <form onSubmit={props.onSubmit}>{props.children}</form>
    </dialog>
  )
}
